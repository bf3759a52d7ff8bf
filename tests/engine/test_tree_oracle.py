"""The decision tree must decide exactly like the naive rule-by-rule evaluator (the oracle).

Three layers:
1. generated realistic policies (benchmarks/gen_policies.py) × thousands of generated requests,
   including misses, nulls and malformed values;
2. small hand-written policies on the tree's edge cases × the cross product of tricky values;
3. hypothesis: small random rule sets (equality, membership, open/closed and overlapping
   intervals on one path, negations, nulls, booleans vs 1/0, numeric-looking strings, missing
   fields, malformed amounts) against random requests.

Agreement is `engine.decide_at(r, f, now).to_dict() == engine.decide_at(r, f, now, naive=True).to_dict()`
(outcome, reason, matched rules, risk, route, obligations and explain).
"""

from __future__ import annotations

import itertools
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from gen_policies import FIXED_NOW, generate_policy, generate_requests  # noqa: E402

from gavel.api import Engine, PolicyError  # noqa: E402
from gavel.engine import evaluate as evaluate_module  # noqa: E402

NOWS = (
    FIXED_NOW,                                     # Friday 10:30
    datetime(2025, 3, 15, 2, 5, tzinfo=UTC),       # Saturday night
    datetime(2025, 3, 16, 23, 0, tzinfo=UTC),      # Sunday late
)

MISSING = object()  # a field left out of the request


def _decide(engine: Engine, request, facts, now, naive: bool):
    try:
        return engine.decide_at(request, facts, now, naive=naive).to_dict()
    except Exception as exc:  # noqa: BLE001 - both evaluators must fail the same way, too
        return ("raised", type(exc).__name__, str(exc))


def assert_agree(engine: Engine, request, facts, now, sources: dict[str, str] | None = None) -> None:
    tree = _decide(engine, request, facts, now, naive=False)
    naive = _decide(engine, request, facts, now, naive=True)
    if tree != naive:
        policy = "\n".join(f"# {p}\n{t}" for p, t in sorted((sources or {}).items()))
        raise AssertionError(
            f"tree and naive disagree\npolicy:\n{policy}\nrequest: {request!r}\nfacts: {facts!r}\nnow: {now}\n"
            f"tree:  {_short(tree)}\nnaive: {_short(naive)}")


def _short(d) -> str:
    if isinstance(d, dict):
        return repr({k: d[k] for k in ("outcome", "reason_code", "rule", "matched_rules", "risk", "message")})
    return repr(d)


# ---- 1. generated realistic policies ---------------------------------------------------------

GENERATED = [  # (rules, seed, requests)
    (12, 1, 1500),
    (40, 2, 1500),
    (120, 3, 1500),
    (300, 4, 1000),
]


@cache
def _generated_engine(size: int, seed: int):
    policy = generate_policy(size, seed)
    return policy, Engine.from_sources(policy.sources)


@pytest.mark.parametrize(("size", "seed", "n"), GENERATED, ids=[f"{s}rules-seed{d}" for s, d, _ in GENERATED])
def test_tree_agrees_with_naive_on_generated_policies(size: int, seed: int, n: int, monkeypatch) -> None:
    walks = _count_tree_walks(monkeypatch)
    policy, engine = _generated_engine(size, seed)
    assert policy.total_rules == size
    cases = generate_requests(policy, n, seed=seed + 100, malformed_rate=0.03)
    outcomes = set()
    for i, (request, facts) in enumerate(cases):
        now = NOWS[i % len(NOWS)]
        before = len(walks)
        tree = _decide(engine, request, facts, now, naive=False)
        after_tree = len(walks)
        naive = _decide(engine, request, facts, now, naive=True)
        # With the tree switched off both sides would run the naive evaluator and always agree.
        assert after_tree > before and len(walks) == after_tree, "the tree side walks the tree, the naive side never"
        if tree != naive:
            assert_agree(engine, request, facts, now)  # raises with a readable report
        outcomes.add(tree["outcome"] if isinstance(tree, dict) else tree[0])
    assert {"allow", "deny"} <= outcomes  # the requests really exercise the policy


def _count_tree_walks(monkeypatch) -> list:
    walks: list = []
    real = evaluate_module.collect

    def counting(tree, act):
        walks.append(tree)
        return real(tree, act)

    monkeypatch.setattr(evaluate_module, "collect", counting)
    return walks


def test_generated_policies_are_deterministic_and_compile() -> None:
    a, b = generate_policy(100, 5), generate_policy(100, 5)
    assert a.sources == b.sources
    assert generate_requests(a, 50, seed=1) == generate_requests(b, 50, seed=1)
    assert generate_policy(100, 6).sources != a.sources
    Engine.from_sources(a.sources)  # raises PolicyError if it does not compile


# ---- 2. hand-written edge cases ---------------------------------------------------------------

EDGE_POLICIES = {
    "bounds_on_one_path": """
package p
rule lt1      allow "r.lt1"     when action.amount < 1
rule le1      deny "r.le1"      when action.amount <= 1
rule gt1      allow "r.gt1"     when action.amount > 1
rule ge1_lt2  require_approval "r.ge1lt2" when { action.amount >= 1
  action.amount < 2 }
  route { role: "finance_manager", approvals: 1, timeout: 24h, on_timeout: deny }
rule gt1_le2  allow "r.gt1le2"  when { action.amount > 1
  action.amount <= 2 }
rule flipped  allow "r.flipped" when 1.5 < action.amount
rule empty    allow "r.empty"   when { action.amount > 2
  action.amount < 1 }
rule point    deny "r.point"    when { action.amount >= 1.5
  action.amount <= 1.5 }
rule eqnum    allow "r.eqnum"   when action.amount == 1
rule innum    allow "r.innum"   when action.amount in {0, 1, 2}
rule notnum   allow "r.notnum"  when action.amount not in {1}
rule isnull   allow "r.isnull"  when action.amount == null
rule arith    allow "r.arith"   when action.amount + 1 > 2
""",
    "dynamic_values": """
package d
rule t      allow "d.t"     when context.flag == true
rule one    allow "d.one"   when context.flag == 1
rule zero   deny "d.zero"   when context.flag in {0}
rule f      allow "d.f"     when context.flag in {false}
rule s1     allow "d.s1"    when context.flag == "1"
rule sset   allow "d.sset"  when context.flag in {"1", "true", null}
rule nul    allow "d.nul"   when context.flag == null
rule notnul allow "d.notnul" when context.flag != null
rule neg    allow "d.neg"   when not (context.flag == 1)
rule gt     allow "d.gt"    when context.flag > 0
rule both   deny "d.both"   when { context.flag == 1
  context.flag in {1, 2} }
""",
    "strings_and_scope": """
package s
scope action.type in {"a", "b", "1"}
default allow "s.default"
risk 30 "big" when action.amount > 10
risk 50 "odd" when action.currency == "1"
rule usd     allow "s.usd"    when action.currency == "USD"
rule fiat    allow "s.fiat"   when action.currency in {"USD", "EUR"}
rule nofiat  deny "s.nofiat"  when action.currency not in {"USD", "EUR"}
rule num     deny "s.num"     when action.currency == "1"
rule risky   deny "s.risky"   when { action.type == "b"
  risk.score >= 50 }
rule unl     deny "s.unl"     when action.type == "a" unless action.currency == "EUR"
""",
    "facts_and_bools": """
package f
rule reg    allow "f.reg"    when agent.registered == true
rule unreg  deny "f.unreg"   when agent.registered == false
rule budget allow "f.budget" when { agent.spend.today <= 1
  agent.spend.today + action.amount <= agent.daily_limit }
rule over   deny "f.over"    when agent.spend.today > 1
rule tier   deny "f.tier"    when agent.status in {"paused", "locked"}
""",
}

AMOUNTS = [MISSING, None, "1", "1.0", "1.5", "2", "0", "-0", " 2 ", "1e0", 0, 1, 2, 1.5, 0.5,
           "abc", "", "NaN", True, False, [1], {"v": 1}]
FLAGS = [MISSING, None, True, False, 1, 0, 1.0, "1", "0", "true", [1], {"a": 1}, 2, "x"]
CURRENCIES = [MISSING, None, "USD", "EUR", "1", "", 1, True]
TYPES = [MISSING, None, "a", "b", "1", "c", 1]
FACT_VALUES = [MISSING, None, "0", "1", "1.5", 2, "abc", True]
BOOLS = [MISSING, None, True, False, 1, 0, "true"]
STATUS = [MISSING, None, "active", "paused", 3]


def _put(d: dict, path: tuple[str, ...], value) -> None:
    if value is MISSING:
        return
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = value


def _request(**fields) -> dict:
    out: dict = {}
    for dotted, v in fields.items():
        _put(out, tuple(dotted.split("__")), v)
    return out


@cache
def _edge_engine(name: str) -> Engine:
    return Engine.from_sources({f"{name}.rules": EDGE_POLICIES[name]})


def test_edge_bounds_on_one_path() -> None:
    engine = _edge_engine("bounds_on_one_path")
    src = {"p.rules": EDGE_POLICIES["bounds_on_one_path"]}
    for amount in AMOUNTS:
        assert_agree(engine, _request(action__amount=amount), None, FIXED_NOW, src)


def test_edge_dynamic_values() -> None:
    engine = _edge_engine("dynamic_values")
    src = {"d.rules": EDGE_POLICIES["dynamic_values"]}
    for flag in FLAGS:
        assert_agree(engine, _request(context__flag=flag), None, FIXED_NOW, src)
    assert_agree(engine, {"context": "not an object"}, None, FIXED_NOW, src)
    assert_agree(engine, {"context": None}, None, FIXED_NOW, src)


def test_edge_strings_and_scope() -> None:
    engine = _edge_engine("strings_and_scope")
    src = {"s.rules": EDGE_POLICIES["strings_and_scope"]}
    for t, cur, amount in itertools.product(TYPES, CURRENCIES, [MISSING, "5", "11", "abc"]):
        assert_agree(engine, _request(action__type=t, action__currency=cur, action__amount=amount), None,
                     FIXED_NOW, src)


def test_edge_facts_and_bools() -> None:
    engine = _edge_engine("facts_and_bools")
    src = {"f.rules": EDGE_POLICIES["facts_and_bools"]}
    for reg, today, limit, status in itertools.product(BOOLS, FACT_VALUES, [MISSING, "2", "x"], STATUS):
        facts: dict = {}
        _put(facts, ("agent", "registered"), reg)
        _put(facts, ("agent", "spend", "today"), today)
        _put(facts, ("agent", "daily_limit"), limit)
        _put(facts, ("agent", "status"), status)
        for amount in (MISSING, "1", "abc"):
            assert_agree(engine, _request(action__amount=amount), facts, FIXED_NOW, src)


# ---- 3. hypothesis: random small rule sets ---------------------------------------------------

# (dotted path, kind); kind decides which literals type-check against it.
PATHS = [
    ("action.amount", "number"), ("confidence", "number"), ("agent.spend.today", "number"),
    ("action.currency", "string"), ("action.type", "string"), ("agent.id", "string"),
    ("agent.status", "string"),
    ("context.flag", "dynamic"), ("context.n", "dynamic"), ("action.args.kind", "dynamic"),
    ("agent.registered", "bool"),
]
NUM_LITS = ["0", "1", "1.5", "2", "10", "0.10", "-1"]
STR_LITS = ['"USD"', '"1"', '"1.0"', '""', '"abc"', '"true"', '"a"']
BOOL_LITS = ["true", "false"]
LITS = {"number": NUM_LITS, "string": STR_LITS, "bool": BOOL_LITS,
        "dynamic": NUM_LITS[:4] + STR_LITS[:3] + BOOL_LITS}

path_st = st.sampled_from([PATHS[0]] * 4 + PATHS)  # bias towards one path: more range nodes


@st.composite
def literal_for(draw, kind: str, allow_null: bool = True) -> str:
    if allow_null and draw(st.integers(0, 7)) == 0:
        return "null"
    if kind == "dynamic":  # one type per literal set keeps sets homogeneous
        kind = draw(st.sampled_from(["number", "string", "bool"]))
    return draw(st.sampled_from(LITS[kind]))


@st.composite
def homogeneous_set(draw, kind: str) -> str:
    if kind == "dynamic":
        kind = draw(st.sampled_from(["number", "string", "bool"]))
    items = draw(st.lists(st.sampled_from(LITS[kind]), min_size=0, max_size=4, unique=True))
    if draw(st.booleans()) and draw(st.integers(0, 3)) == 0:
        items.append("null")
    return "{" + ", ".join(items) + "}" if items else "{}"


@st.composite
def condition(draw, depth: int = 0) -> str:
    path, kind = draw(path_st)
    shape = draw(st.sampled_from(
        ["eq", "eq", "ne", "in", "in", "not_in", "cmp", "cmp", "cmp", "flipped", "null", "not", "arith", "or",
         "quant", "fact_set", "let"]))
    if shape == "quant":
        q = draw(st.sampled_from(["any", "all"]))
        return f"{q} it in context.items: it {draw(st.sampled_from(['==', '!=']))} {draw(literal_for('dynamic'))}"
    if shape == "fact_set":
        return draw(st.sampled_from(['"a" in agent.allowed_actions', '"b" not in agent.allowed_actions',
                                     'contains(agent.allowed_actions, "a")']))
    if shape == "let":
        return draw(st.sampled_from(["action.amount > lim", "action.amount <= lim", "action.currency in fiat",
                                     "big", "not big"]))
    if shape in ("cmp", "flipped", "arith") and kind not in ("number", "dynamic"):
        shape = "eq"
    if shape == "eq":
        return f"{path} == {draw(literal_for(kind))}"
    if shape == "ne":
        return f"{path} != {draw(literal_for(kind))}"
    if shape == "in":
        return f"{path} in {draw(homogeneous_set(kind))}"
    if shape == "not_in":
        return f"{path} not in {draw(homogeneous_set(kind))}"
    if shape == "cmp":
        return f"{path} {draw(st.sampled_from(['<', '<=', '>', '>=']))} {draw(st.sampled_from(NUM_LITS))}"
    if shape == "flipped":
        return f"{draw(st.sampled_from(NUM_LITS))} {draw(st.sampled_from(['<', '<=', '>', '>=', '==']))} {path}"
    if shape == "null":
        return f"{path} {draw(st.sampled_from(['==', '!=']))} null"
    if shape == "arith":
        return f"{path} + 1 {draw(st.sampled_from(['<', '>=']))} {draw(st.sampled_from(NUM_LITS))}"
    if depth >= 1:
        return f"{path} == {draw(literal_for(kind))}"
    if shape == "not":
        return f"not ({draw(condition(depth + 1))})"
    return f"({draw(condition(depth + 1))}) or ({draw(condition(depth + 1))})"


def _block(conds: list[str]) -> str:
    if len(conds) == 1:
        return conds[0]
    return "{\n    " + "\n    ".join(conds) + "\n  }"


ROUTE = '  route { role: "finance_manager", approvals: 1, timeout: 24h, on_timeout: deny }\n'


@st.composite
def rule_text(draw, name: str) -> str:
    effect = draw(st.sampled_from(["allow", "deny", "require_approval"]))
    prio = draw(st.sampled_from(["", "", " priority 5", " priority -1"]))
    conds = draw(st.lists(condition(), min_size=1, max_size=4))
    text = f'rule {name}{prio}\n  {effect} "x.{name}"\n  when {_block(conds)}\n'
    if draw(st.integers(0, 5)) == 0:
        text += f"  unless {_block(draw(st.lists(condition(), min_size=1, max_size=2)))}\n"
    if effect == "require_approval":
        text += ROUTE
    return text


@st.composite
def package_text(draw, name: str) -> str:
    lines = [f"package {name}\n", 'let lim = 1.5\nlet fiat = {"USD", "EUR"}\nlet big = action.amount >= 2\n']
    if draw(st.booleans()):
        lines.append(f"scope {_block(draw(st.lists(condition(), min_size=1, max_size=2)))}\n")
    for i in range(draw(st.integers(0, 2))):
        weight = draw(st.sampled_from([10, 30, 60, -20]))
        lines.append(f'risk {weight} "f{i}" when {draw(condition())}\n')
    if draw(st.integers(0, 3)) == 0:
        eff = draw(st.sampled_from(["allow", "deny"]))
        lines.append(f'default {eff} "{name}.default"\n')
    n = draw(st.integers(1, 10))
    for i in range(n):
        lines.append(draw(rule_text(f"r{i}")))
    if draw(st.integers(0, 4)) == 0:
        lines.append(f'rule risky\n  deny "x.risky"\n  when risk.score >= {draw(st.sampled_from([30, 50, 60]))}\n')
    return "\n".join(lines)


@st.composite
def policy_sources(draw) -> dict[str, str]:
    n = draw(st.integers(1, 2))
    return {f"p{i}.rules": draw(package_text(f"p{i}")) for i in range(n)}


VALUE_POOLS = {
    "number": [MISSING, None, "1", "1.0", "1.5", "2", "0", "-0", "10", "0.1", " 2 ", "-1", 0, 1, 2, 1.5, 10,
               "abc", "", True, False, [1], "1e1"],
    "string": [MISSING, None, "USD", "1", "1.0", "", "abc", "true", "a", 1, True],
    "dynamic": [MISSING, None, True, False, 1, 0, 1.5, 2, 10, "1", "0", "1.0", "abc", "true", "USD", [1],
                {"k": 1}, -1],
    "bool": [MISSING, None, True, False, 1, 0, "true"],
}
FACT_PATHS = {"agent.spend.today", "agent.status", "agent.registered"}


@st.composite
def request_and_facts(draw) -> tuple[dict, dict | None]:
    request: dict = {}
    facts: dict = {}
    for path, kind in PATHS:
        value = draw(st.sampled_from(VALUE_POOLS[kind]))
        target = facts if path in FACT_PATHS else request
        _put(target, tuple(path.split(".")), value)
    items = draw(st.sampled_from([MISSING, None, [], [1], [1, "1"], [True, 0], "abc", {"k": 1}]))
    if items is not MISSING and isinstance(request.get("context", {}), dict):
        request.setdefault("context", {})["items"] = items
    allowed = draw(st.sampled_from([MISSING, None, [], ["a"], ["a", "b"], ["b"], "a", 1, [1], [{"a": 1}], [["a"]]]))
    _put(facts, ("agent", "allowed_actions"), allowed)
    if draw(st.integers(0, 9)) == 0:
        request["context"] = draw(st.sampled_from([None, "str", [1, 2]]))
    return request, (facts if facts or draw(st.booleans()) else None)


def _compile(sources: dict[str, str]) -> Engine | None:
    try:
        return Engine.from_sources(sources)
    except PolicyError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sources=policy_sources(), cases=st.lists(request_and_facts(), min_size=1, max_size=25),
       now=st.sampled_from(NOWS))
def test_tree_agrees_with_naive_on_random_rule_sets(sources, cases, now) -> None:
    engine = _compile(sources)
    assert engine is not None, f"the generated policy does not compile:\n{sources}"
    for request, facts in cases:
        assert_agree(engine, request, facts, now, sources)


# ---- regressions: disagreements found by this file ---------------------------------------------

def test_unhashable_member_in_set_fact() -> None:
    """A set-typed fact holding an object used to raise TypeError (not EvalError) while being
    converted: the naive evaluator crashed out of `decide_at`, the tree skipped the rule and allowed."""
    src = {"p.rules": """
package p
default allow "p.default"
rule r1 deny "p.r1" when {
  "refund_approve" in agent.allowed_actions
  action.type == "x"
}
rule r2 deny "p.r2" when action.type == "x"
rule r3 deny "p.r3" when action.type == "z"
rule r4 deny "p.r4" when action.type == "w"
"""}
    engine = Engine.from_sources(src)
    assert_agree(engine, {"action": {"type": "y"}}, {"agent": {"allowed_actions": [{"a": 1}]}}, FIXED_NOW, src)
