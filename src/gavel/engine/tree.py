"""The decision tree: which rules can possibly match this request?

Algorithm (a discrimination tree in the spirit of OPA's rule index):

1. Every rule is a conjunction (its package's `scope` and its `when` conditions). From each
   conjunct we extract *index tests* on input paths:
   - equality and membership — `p == c`, `c == p`, `p in {c1, c2}` — become the set of values
     that `p` may take;
   - numeric bounds — `p < c`, `p >= c`, … on a path typed `number` — become an interval.
   Everything else (negations, functions, arithmetic, quantifiers, `unless`) stays a *residual*
   condition, evaluated only for rules the tree reaches.
2. `build` picks the path that the most remaining rules test (ties: byte order of the path),
   and makes a branch node on it:
   - a `Switch` maps each value to the subtree of rules that accept it;
   - a `Ranges` node splits the number line at every bound into elementary segments
     (open intervals and single points) and maps each to the rules whose interval covers it;
   - rules that do not test that path go to the node's `rest` subtree, which is always visited.
   It recurses on each subtree with that (path, kind) used up, and stops at a `Leaf` when few
   rules remain or no path is tested by two or more of them. A leaf entry keeps the rule and
   the conditions not yet decided by the branches above it (in source order).
3. `collect` walks the tree for one request: at each branch it reads the path once (memoised),
   follows the matching child and the `rest` child, and returns the leaf entries reached. A
   rule sits in at most one reachable leaf, so each is evaluated at most once.

An index test decides exactly what its conjunct would (null never matches, `true` is not `1`),
so the set of matching rules is the same as evaluating every rule in turn — `evaluate_naive`
does that and the tests compare the two on generated rule sets and requests. If reading a
branch's path fails (e.g. a malformed amount), the evaluator falls back to the naive path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gavel.engine.compile import Fn, path_reader
from gavel.lang import ir
from gavel.lang.constraints import IndexTest, Interval, PathKey, index_test

LEAF_SIZE = 3
MAX_RANGE_FANOUT = 8
# A rule sits in one subtree per value of a membership test it has (or per segment its interval
# covers) at every level, so copies multiply: three `in {…}` sets of 90, 30 and 30 values put one
# rule into 81,000 leaves. Past this many placements per rule (plus a floor), the remaining rules
# become one leaf checked rule by rule; realistic policies place each rule ~2 times.
MAX_PLACEMENTS_PER_RULE = 32
MIN_PLACEMENTS = 4096


class Candidate:
    """A rule the tree could not rule out, and what is left to check.

    `residual` indexes the rule's conjuncts; `checks` holds their compiled closures, filled in
    once when the policy is compiled (`policy.arm`), so a decision never looks anything up.
    """

    __slots__ = ("rule", "residual", "checks")

    def __init__(self, rule: int, residual: tuple[int, ...]):
        self.rule = rule
        self.residual = residual
        self.checks: tuple = ()

    def __repr__(self) -> str:
        return f"Candidate(rule={self.rule}, residual={self.residual})"


@dataclass(frozen=True, slots=True)
class Leaf:
    entries: tuple[Candidate, ...]


@dataclass(frozen=True, slots=True)
class Switch:
    path: PathKey
    read: Fn
    cases: dict
    rest: Node | None


@dataclass(frozen=True, slots=True)
class Ranges:
    path: PathKey
    read: Fn
    bounds: tuple[Decimal, ...]
    segments: tuple[Node | None, ...]
    rest: Node | None


Node = Leaf | Switch | Ranges


@dataclass
class _Pending:
    rule: int
    tests: dict[tuple[PathKey, str], tuple[IndexTest, tuple[int, ...]]]  # (path, kind) → merged test, conjuncts
    residual: tuple[int, ...]


def build_tree(rule_conjuncts: list[tuple[ir.IExpr, ...]], path_types: dict[PathKey, Any]) -> Node | None:
    """Build the tree over rules given as lists of conjuncts (their position is their id)."""
    pending = []
    for rule, conjuncts in enumerate(rule_conjuncts):
        tests: dict = {}
        residual = []
        for i, cond in enumerate(conjuncts):
            test = index_test(cond)
            if test is None:
                residual.append(i)
                continue
            key = (test.path, test.kind)
            if key in tests:
                old, idx = tests[key]
                tests[key] = (old.merge(test), (*idx, i))
            else:
                tests[key] = (test, (i,))
        pending.append(_Pending(rule, tests, tuple(residual)))
    if not pending:
        return None
    return _build(pending, path_types, [MAX_PLACEMENTS_PER_RULE * len(pending) + MIN_PLACEMENTS])


def _build(rules: list[_Pending], path_types: dict, budget: list[int]) -> Node | None:
    """`budget[0]`: rule placements the rest of the tree may still make (shared, spent as built)."""
    if not rules:
        return None
    counts = Counter(key for r in rules for key in r.tests)
    if len(rules) <= LEAF_SIZE or not counts:
        return _leaf(rules)
    key, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if count < 2:
        return _leaf(rules)
    path, kind = key
    testing = [r for r in rules if key in r.tests]
    rest = [r for r in rules if key not in r.tests]
    read = path_reader(path[0], path[1:], path_types[path])
    if kind == "eq":
        cost = sum(len(r.tests[key][0].values) for r in testing)
        if cost > budget[0]:
            return _leaf(rules)
        budget[0] -= cost
        groups: dict[Any, list[_Pending]] = {}
        for r in testing:
            test, _ = r.tests[key]
            remaining = _without(r, key)
            for v in sorted(test.values, key=repr):
                groups.setdefault(v, []).append(remaining)
        cases = {v: _build(g, path_types, budget) for v, g in groups.items()}
        return Switch(path, read, {v: n for v, n in cases.items() if n is not None}, _build(rest, path_types, budget))
    bounds = sorted({b for r in testing for b in _ends(r.tests[key][0].interval)})
    spans = [_covered_segments(r.tests[key][0].interval, bounds) for r in testing]
    cost = sum(max(0, last - first + 1) for first, last in spans)
    if cost > MAX_RANGE_FANOUT * len(testing) + 64:
        # Too many overlapping intervals to split usefully: keep them as residual checks.
        flattened = [_as_residual(r, key) for r in testing]
        return _build(flattened + rest, path_types, budget)
    if cost > budget[0]:
        return _leaf(rules)
    budget[0] -= cost
    segments: list[list[_Pending]] = [[] for _ in range(2 * len(bounds) + 1)]
    for r, (first, last) in zip(testing, spans, strict=True):
        remaining = _without(r, key)
        for s in range(first, last + 1):
            segments[s].append(remaining)
    nodes = tuple(_build(s, path_types, budget) for s in segments)
    return Ranges(path, read, tuple(bounds), nodes, _build(rest, path_types, budget))


def _ends(interval: Interval) -> list[Decimal]:
    return [b for b in (interval.low, interval.high) if b is not None]


def _covered_segments(interval: Interval, bounds: list[Decimal]) -> tuple[int, int]:
    """The first and last elementary segment that `interval` covers (first > last: none).

    Segment 2i is the open gap below bounds[i] (above bounds[i-1]), segment 2i+1 the point
    bounds[i]. Every end of `interval` is one of `bounds`, so the segments it covers are one
    contiguous run found by two binary searches — not by testing every segment, which made
    building a Ranges node quadratic in the rules that test its path."""
    if interval.low is None:
        first = 0
    else:
        i = bisect_left(bounds, interval.low)
        first = 2 * i + 1 if interval.low_closed else 2 * i + 2
    if interval.high is None:
        last = 2 * len(bounds)
    else:
        i = bisect_left(bounds, interval.high)
        last = 2 * i + 1 if interval.high_closed else 2 * i
    return first, last


def _without(r: _Pending, key) -> _Pending:
    return _Pending(r.rule, {k: v for k, v in r.tests.items() if k != key}, r.residual)


def _as_residual(r: _Pending, key) -> _Pending:
    _, idx = r.tests[key]
    return _Pending(r.rule, {k: v for k, v in r.tests.items() if k != key}, tuple(sorted((*r.residual, *idx))))


def _leaf(rules: list[_Pending]) -> Leaf:
    entries = []
    for r in sorted(rules, key=lambda r: r.rule):
        undecided = set(r.residual)
        for _, idx in r.tests.values():
            undecided.update(idx)
        entries.append(Candidate(r.rule, tuple(sorted(undecided))))
    return Leaf(tuple(entries))


def collect(root: Node | None, act) -> list[Candidate]:
    """The leaf entries this request reaches (raises EvalError if a branch path is unreadable)."""
    out: list[Candidate] = []
    if root is None:
        return out
    stack = [root]
    pop, push, extend = stack.pop, stack.append, out.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is Leaf:
            extend(node.entries)
            continue
        if node.rest is not None:
            push(node.rest)
        v = node.read(act)
        if v is None:
            continue
        if kind is Switch:
            if type(v) is bool:
                v = ("bool", v)  # value_key, inlined: booleans never equal 0 or 1
            try:
                child = node.cases.get(v)
            except TypeError:  # unhashable (a list or object): equals no constant
                child = None
        else:
            bounds = node.bounds
            i = bisect_left(bounds, v)
            child = node.segments[2 * i + 1 if i < len(bounds) and bounds[i] == v else 2 * i]
        if child is not None:
            push(child)
    return out


def tree_stats(root: Node | None) -> dict[str, int]:
    """Node counts, for the benchmarks and for inspecting how well a policy indexes."""
    stats = {"switch": 0, "ranges": 0, "leaf": 0, "entries": 0, "depth": 0}

    def walk(n: Node | None, depth: int) -> None:
        if n is None:
            return
        stats["depth"] = max(stats["depth"], depth)
        if isinstance(n, Leaf):
            stats["leaf"] += 1
            stats["entries"] += len(n.entries)
            return
        stats["switch" if isinstance(n, Switch) else "ranges"] += 1
        walk(n.rest, depth + 1)
        children = n.cases.values() if isinstance(n, Switch) else n.segments
        for c in children:
            walk(c, depth + 1)

    walk(root, 0)
    return stats
