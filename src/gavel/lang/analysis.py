"""Analysis: warnings about rules that cannot do what their author meant.

- W302 unreachable: the rule's conditions (with its package's scope) contradict each other,
  e.g. `action.amount > 10` and `action.amount < 5`, or a scope of `{"refund"}` and a rule
  about `"payment"`.
- W303 shadowed: another rule matches whenever this one does and always beats it — a more
  restrictive effect, or the same effect ranked higher — so this rule can never win.

"Matches whenever" is decided conservatively: every condition of the other rule must be
implied by one of this rule's (the same condition, a narrower set of values or a narrower
interval on the same path). Rules with `unless` never shadow others.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from gavel.lang import ir
from gavel.lang.constraints import IndexTest, constraints_of, index_test
from gavel.lang.diagnostics import Diagnostic, warning

_RANK = {"allow": 1, "require_approval": 2, "deny": 3}
MAX_PAIRS = 2_000_000


def _conjuncts(pkg: ir.PackageIR, rule: ir.RuleIR) -> tuple[ir.IExpr, ...]:
    return (*pkg.scope, *rule.when)


def _contradiction(conjuncts: tuple[ir.IExpr, ...]) -> str | None:
    for c in conjuncts:
        if isinstance(c, ir.Const) and c.value is not True:
            return "a condition is always false"
    tests = constraints_of(conjuncts)
    for (path, kind), test in tests.items():
        dotted = ".".join(path[1:])
        if test.is_empty():
            return f"its conditions on `{dotted}` contradict each other"
        if kind == "eq":
            rng = tests.get((path, "range"))
            if rng is not None:
                numbers = [v for v in test.values if isinstance(v, Decimal)]
                if len(numbers) == len(test.values) and not any(rng.interval.contains_point(v) for v in numbers):
                    return f"its conditions on `{dotted}` contradict each other"
    return None


def _implied(cond: ir.IExpr, test: IndexTest | None, own: tuple[ir.IExpr, ...], own_tests: dict) -> bool:
    if test is None:
        return cond in own
    mine: IndexTest | None = own_tests.get((test.path, test.kind))
    if test.kind == "eq":
        return mine is not None and mine.values <= test.values
    if mine is not None and mine.interval.within(test.interval):
        return True
    eq = own_tests.get((test.path, "eq"))
    return eq is not None and bool(eq.values) and all(
        isinstance(v, Decimal) and test.interval.contains_point(v) for v in eq.values)


def _beats(s: ir.RuleIR, r: ir.RuleIR) -> bool:
    if _RANK[s.effect] != _RANK[r.effect]:
        return _RANK[s.effect] > _RANK[r.effect]
    return (s.specificity, s.priority, r.package.encode(), r.name.encode()) > (
        r.specificity, r.priority, s.package.encode(), s.name.encode())


def analyze(program: ir.ProgramIR) -> tuple[Diagnostic, ...]:
    out: list[Diagnostic] = []
    entries = []  # (package, rule, conjuncts, tests)
    for pkg in program.packages:
        for rule in pkg.rules:
            conj = _conjuncts(pkg, rule)
            why = _contradiction(conj)
            if why is not None:
                out.append(warning("W302", f"rule `{rule.id}` can never match: {why}", rule.span,
                                   "check the thresholds and the package scope"))
                continue
            entries.append((pkg, rule, conj, constraints_of(conj), tuple((c, index_test(c)) for c in conj)))
    out.extend(_shadowing(entries))
    return tuple(out)


def _shadowing(entries) -> list[Diagnostic]:
    # Bucket by the most tested path so that only rules that can overlap are compared.
    path_counts: dict = defaultdict(int)
    for _, _, _, tests, _ in entries:
        for (path, kind) in tests:
            if kind == "eq":
                path_counts[path] += 1
    primary = max(sorted(path_counts), key=lambda p: path_counts[p], default=None)
    buckets: dict = defaultdict(list)
    unconstrained = []
    for e in entries:
        test = e[3].get((primary, "eq")) if primary else None
        if test is None:
            unconstrained.append(e)
        else:
            for v in test.values:
                buckets[v].append(e)
    out: list[Diagnostic] = []
    pairs = 0
    for r_entry in entries:
        _, r, r_conj, r_tests, _ = r_entry
        test = r_tests.get((primary, "eq")) if primary else None
        if test is None:
            candidates = unconstrained
        else:
            seen: dict[int, tuple] = {id(e): e for e in unconstrained}
            for v in test.values:
                for e in buckets[v]:
                    seen[id(e)] = e
            candidates = list(seen.values())
        own = r_conj  # a tuple: folded constants may hold dicts, which do not hash
        for _, s, _, _, s_tests in candidates:
            pairs += 1
            if pairs > MAX_PAIRS:
                return out
            if s is r or s.unless or not _beats(s, r):
                continue
            if all(_implied(c, t, own, r_tests) for c, t in s_tests):
                out.append(warning(
                    "W303", f"rule `{r.id}` can never win: `{s.id}` matches whenever it does and wins",
                    r.span, f"{s.id} is at {s.span}; narrow it or remove this rule"))
                break
    return out
