"""`gavel.engine.evaluate` itself: the risk tiers at their exact bounds, and the decision tree
really deciding (the tree-vs-naive oracle tests cannot see a tree that is switched off, since
both of their sides would then run the naive evaluator)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gavel import Engine
from gavel.engine import evaluate as evaluate_module
from gavel.engine.evaluate import risk_tier
from gavel.lang.values import EvalError

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("score", "tier"), [
    (0, "low"), (24, "low"), (25, "medium"), (49, "medium"), (50, "high"), (74, "high"), (75, "critical"),
    (100, "critical"),
])
def test_risk_tiers_change_exactly_at_25_50_and_75(score: int, tier: str) -> None:
    assert risk_tier(score) == tier


TIERED = """package p
risk 25 "a" when context.a == true
risk 25 "b" when context.b == true
risk 25 "c" when context.c == true
risk 60 "d" when context.d == true
risk -30 "e" when context.e == true
rule by_tier allow "p.tier" when action.type == "refund"
  with { tier: risk.tier, score: risk.score }
"""


@pytest.mark.parametrize(("context", "score", "tier"), [
    ({}, 0, "low"),
    ({"a": True}, 25, "medium"),
    ({"a": True, "b": True}, 50, "high"),
    ({"a": True, "b": True, "c": True}, 75, "critical"),
    ({"a": True, "d": True, "e": True}, 55, "high"),
    ({"a": True, "b": True, "d": True}, 100, "critical"),  # 110, clamped
    ({"e": True}, 0, "low"),  # -30, clamped
])
def test_the_decision_carries_the_clamped_score_and_its_tier(context: dict, score: int, tier: str) -> None:
    engine = Engine.from_sources({"p.rules": TIERED})
    for naive in (False, True):
        d = engine.decide_at({"action": {"type": "refund"}, "agent": {"id": "a1"}, "context": context}, None, NOW,
                             naive=naive)
        assert (d.risk_score, d.risk_tier) == (score, tier)
        assert d.obligations == {"tier": tier, "score": score}  # what the rules read is the same


POLICY = """package p
rule small allow "p.small" when { action.type == "refund"
  action.amount <= 100 }
rule large deny "p.large" when { action.type == "refund"
  action.amount > 100 }
""" + "".join(f'rule other{i} allow "p.other{i}" when action.type == "lookup{i}"\n' for i in range(10))
REQUEST = {"action": {"type": "refund", "amount": "50"}, "agent": {"id": "a1"}}


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every call the evaluator makes to the tree's `collect`, and what it returned."""
    calls: list = []
    real = evaluate_module.collect

    def spy(tree, act):
        reached = real(tree, act)
        calls.append(reached)
        return reached

    monkeypatch.setattr(evaluate_module, "collect", spy)
    return calls


def test_the_tree_decides_and_the_naive_evaluator_does_not_use_it(collected: list) -> None:
    engine = Engine.from_sources({"p.rules": POLICY})
    assert engine.decide_at(REQUEST, None, NOW).rule == "p.small"
    assert collected, "the tree was never consulted"
    reached = [c for calls in collected for c in calls]
    assert {c.rule for c in reached} == {0, 1}, "the tree handed rules of other action types to the residual checks"
    collected.clear()
    assert engine.decide_at(REQUEST, None, NOW, naive=True).rule == "p.small"
    assert collected == []


def test_only_the_rules_the_tree_reaches_can_match(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine.from_sources({"p.rules": POLICY})
    monkeypatch.setattr(evaluate_module, "collect", lambda tree, act: [])
    d = engine.decide_at(REQUEST, None, NOW)
    assert (d.outcome, d.reason_code) == ("deny", "policy.no_match")
    assert engine.decide_at(REQUEST, None, NOW, naive=True).rule == "p.small"


def test_an_unreadable_branch_falls_back_to_checking_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine.from_sources({"p.rules": POLICY})

    def unreadable(tree, act):
        raise EvalError("a branch path could not be read")

    monkeypatch.setattr(evaluate_module, "collect", unreadable)
    assert engine.decide_at(REQUEST, None, NOW).to_dict() == engine.decide_at(REQUEST, None, NOW, naive=True).to_dict()
    assert engine.decide_at(REQUEST, None, NOW).rule == "p.small"


def test_risk_factors_are_listed_in_source_order_whatever_order_the_tree_reaches_them() -> None:
    source = ('package p\nrisk 10 "residual" when context.score > 5\n'
              + "".join(f'risk 20 "t{i}" when action.type == "t{i}"\n' for i in range(6))
              + 'rule r allow "p.r" when action.type != "zzz"\n')
    engine = Engine.from_sources({"p.rules": source})
    request = {"action": {"type": "t2"}, "agent": {"id": "a1"}, "context": {"score": 10}}
    for naive in (False, True):
        d = engine.decide_at(request, None, NOW, naive=naive)
        assert [(f.factor, f.rule) for f in d.risk_factors] == [("residual", "p.risk#1"), ("t2", "p.risk#4")]
        assert d.risk_score == 30


def test_failures_are_reported_in_rule_order_and_the_first_names_the_decision() -> None:
    engine = Engine.from_sources({"p.rules": 'package p\nrule b allow "p.b" when action.amount > 1\n'
                                              'rule a allow "p.a" when action.amount + 1 > 2\n'})
    d = engine.decide_at({"action": {"type": "x", "amount": "abc"}, "agent": {"id": "a1"}}, None, NOW)
    assert (d.outcome, d.reason_code, d.rule) == ("deny", "policy.evaluation_error", None)
    assert d.message == "rule p.a could not be evaluated: `abc` is not a decimal number"
    assert d.why == "a rule failed to evaluate; Gavel fails closed"
    assert [(f.rule, f.message) for f in d.errors] == [("p.a", "`abc` is not a decimal number"),
                                                       ("p.b", "`abc` is not a decimal number")]


def test_obligations_that_fail_to_evaluate_deny_the_winner() -> None:
    engine = Engine.from_sources({"p.rules": 'package p\nrule c allow "p.c" when action.type == "x"\n'
                                              '  with { double: action.amount * 2 }\n'})
    d = engine.decide_at({"action": {"type": "x", "amount": "abc"}, "agent": {"id": "a1"}}, None, NOW)
    assert (d.outcome, d.reason_code, d.obligations) == ("deny", "policy.evaluation_error", {})
    assert d.message == "rule p.c could not be evaluated: obligations: `abc` is not a decimal number"
    assert [(f.rule, f.message) for f in d.errors] == [("p.c", "obligations: `abc` is not a decimal number")]


def test_no_match_and_default_messages() -> None:
    engine = Engine.from_sources({"p.rules": 'package p\nrule a allow "p.a" when action.type == "a"\n'
                                              'rule d deny "p.d" when action.type == "d"\n'
                                              'rule q require_approval "p.q" when action.type == "q"\n'
                                              '  route { role: "m" }\n'})
    expected = {"a": "allowed by p.a (p.a)", "d": "denied by p.d (p.d)", "q": "needs approval by p.q (p.q)"}
    for action_type, message in expected.items():
        assert engine.decide_at({"action": {"type": action_type}, "agent": {"id": "a1"}}, None, NOW).message == message
    d = engine.decide_at({"action": {"type": "zzz"}, "agent": {"id": "a1"}}, None, NOW)
    assert (d.outcome, d.reason_code, d.message, d.why) == (
        "deny", "policy.no_match", "no rule matched this request", "no rule and no package default matched")
