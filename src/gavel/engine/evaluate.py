"""Evaluate a compiled policy for one request. Pure: inputs in, `Decision` out.

Order (LANGUAGE.md §Combining): risk rules first (score clamped to 0–100, tier fixed), then
the rules the decision tree reaches, then package defaults for packages in scope with no
match of their own, then the combining rule. `evaluate_naive` checks every rule in turn and
is the oracle the tree is tested against.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from gavel.engine.activation import Activation
from gavel.engine.combine import EVALUATION_ERROR, NO_MATCH, rank, why_winner
from gavel.engine.decision import Decision, EvalFailure, Match, RiskFactor
from gavel.engine.policy import CompiledPolicy, CompiledRule
from gavel.engine.tree import collect
from gavel.lang.values import EvalError

TIERS = ((25, "low"), (50, "medium"), (75, "high"))


def risk_tier(score: int) -> str:
    for bound, name in TIERS:
        if score < bound:
            return name
    return "critical"


def evaluate(policy: CompiledPolicy, request: dict, facts: dict | None, now: datetime,
             naive: bool = False) -> Decision:
    act = Activation(request, facts if facts is not None else {}, now)
    failures: list[EvalFailure] = []

    # 1. risk
    factors = [RiskFactor(r.ir.factor, r.ir.weight, r.ir.id)
               for r in _matching(policy.risks, policy.risk_tree, act, naive, failures)] if policy.risks else []
    score = max(0, min(100, sum(f.weight for f in factors)))
    act.risk_score = Decimal(score)
    act.risk_tier = risk_tier(score)

    # 2. rules, 3. defaults of packages in scope with no match of their own
    matched = _matching(policy.rules, policy.rule_tree, act, naive, failures)
    if policy.defaults:
        with_match = {r.ir.package for r in matched}
        for default in _matching(policy.defaults, policy.default_tree, act, naive, failures):
            if default.ir.package not in with_match:
                matched.append(default)

    if len(factors) > 1:
        order = policy.risk_order
        factors.sort(key=lambda f: order[f.rule])
    return _combine(policy, act, matched, factors, score, failures)


def evaluate_naive(policy: CompiledPolicy, request: dict, facts: dict | None, now: datetime) -> Decision:
    return evaluate(policy, request, facts, now, naive=True)


def _matching(items: tuple, tree, act: Activation, naive: bool, failures: list) -> list:
    """The items (rules, risk rules or defaults) whose conditions hold.

    Conjuncts are checked in order; a false one settles the item even if another failed to
    evaluate (so the order the tree checks them in never changes an answer); an item with a
    failure and no false conjunct is recorded in `failures`, which makes the decision deny.
    """
    reached = None
    if not naive:
        try:
            reached = collect(tree, act)
        except EvalError:
            reached = None  # a branch path is unreadable: decide item by item instead
    out = []
    if reached is None:
        for item in items:
            try:
                if item.check_all(act) and not (getattr(item, "unless", None) is not None and item.unless(act)):
                    out.append(item)
            except EvalError as exc:
                failures.append(EvalFailure(item.ir.id, str(exc), item.location))
        return out
    for cand in reached:
        item = items[cand.rule]
        failure = None
        holds = True
        for check in cand.checks:
            try:
                if check(act) is not True:
                    holds = False
                    break
            except EvalError as exc:
                if failure is None:
                    failure = exc
        if not holds:
            continue
        try:
            if failure is not None:
                raise failure
            unless = getattr(item, "unless", None)
            if unless is not None and unless(act):
                continue
        except EvalError as exc:
            failures.append(EvalFailure(item.ir.id, str(exc), item.location))
            continue
        out.append(item)
    return out


def _combine(policy: CompiledPolicy, act: Activation, matched: list[CompiledRule], factors: list[RiskFactor],
             score: int, failures: list[EvalFailure]) -> Decision:
    matches = rank([r.match for r in matched]) if len(matched) > 1 else [r.match for r in matched]
    by_id = {r.ir.id: r for r in matched}
    common: dict[str, Any] = {
        "matches": tuple(matches), "risk_score": score, "risk_tier": act.risk_tier,
        "risk_factors": tuple(factors), "bundle_hash": policy.bundle_hash,
    }
    if failures:
        failures.sort(key=lambda f: (f.rule.encode(), f.message))
        first = failures[0]
        return Decision(
            outcome="deny", reason_code=EVALUATION_ERROR, reason_codes=(EVALUATION_ERROR,), rule=None,
            message=f"rule {first.rule} could not be evaluated: {first.message}",
            why="a rule failed to evaluate; Gavel fails closed", route=None, obligations={},
            errors=tuple(failures), **common,
        )
    if not matches:
        return Decision(
            outcome="deny", reason_code=NO_MATCH, reason_codes=(NO_MATCH,), rule=None,
            message="no rule matched this request", why="no rule and no package default matched",
            route=None, obligations={}, errors=(), **common,
        )
    winner = matches[0]
    compiled = by_id[winner.rule]
    obligations: dict[str, Any] = {}
    if compiled.obligations is not None:
        try:
            obligations = compiled.obligations(act)
        except EvalError as exc:
            failure = EvalFailure(winner.rule, f"obligations: {exc}", compiled.location)
            return _combine(policy, act, matched, factors, score, [failure])
    codes = tuple(dict.fromkeys(m.reason_code for m in matches if m.effect == winner.effect))
    return Decision(
        outcome=winner.effect, reason_code=winner.reason_code, reason_codes=codes, rule=winner.rule,
        message=compiled.ir.message or _default_message(winner), why=why_winner(matches),
        route=compiled.route, obligations=obligations, errors=(), **common,
    )


def _default_message(m: Match) -> str:
    verb = {"allow": "allowed", "deny": "denied", "require_approval": "needs approval"}[m.effect]
    return f"{verb} by {m.rule} ({m.reason_code})"
