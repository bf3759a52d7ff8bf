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
    act = Activation(request, facts or {}, now)
    failures: list[EvalFailure] = []

    # 1. risk
    factors: list[RiskFactor] = []
    for risk in _risks_matching(policy, act, naive, failures):
        factors.append(RiskFactor(risk.ir.factor, risk.ir.weight, risk.ir.id))
    score = max(0, min(100, sum(f.weight for f in factors)))
    act.risk_score = Decimal(score)
    act.risk_tier = risk_tier(score)

    # 2. rules, 3. defaults
    matched = _rules_matching(policy, act, naive, failures)
    packages_with_match = {r.ir.package for r in matched}
    for default, scope in policy.defaults:
        if default.ir.package in packages_with_match:
            continue
        try:
            if scope(act):
                matched.append(default)
        except EvalError as exc:
            failures.append(EvalFailure(default.ir.id, str(exc), default.location))

    factors.sort(key=lambda f: (f.rule.encode(), f.factor))
    return _combine(policy, act, matched, factors, score, failures)


def evaluate_naive(policy: CompiledPolicy, request: dict, facts: dict | None, now: datetime) -> Decision:
    return evaluate(policy, request, facts, now, naive=True)


def _risks_matching(policy: CompiledPolicy, act: Activation, naive: bool, failures: list):
    candidates = None
    if not naive:
        try:
            candidates = [(policy.risks[c.rule], policy.risk_residual_checks[c])
                          for c in collect(policy.risk_tree, act)]
        except EvalError:
            candidates = None
    if candidates is None:
        candidates = [(r, r.check_all) for r in policy.risks]
    out = []
    for risk, check in candidates:
        try:
            if check(act):
                out.append(risk)
        except EvalError as exc:
            failures.append(EvalFailure(risk.ir.id, str(exc), risk.location))
    return out


def _rules_matching(policy: CompiledPolicy, act: Activation, naive: bool, failures: list) -> list[CompiledRule]:
    candidates = None
    if not naive:
        try:
            candidates = [(policy.rules[c.rule], policy.residual_checks[c]) for c in collect(policy.rule_tree, act)]
        except EvalError:
            candidates = None  # a branch path is unreadable: decide rule by rule instead
    if candidates is None:
        candidates = [(r, r.check_all) for r in policy.rules]
    out = []
    for rule, check in candidates:
        try:
            if check(act) and not (rule.unless is not None and rule.unless(act)):
                out.append(rule)
        except EvalError as exc:
            failures.append(EvalFailure(rule.ir.id, str(exc), rule.location))
    return out


def _combine(policy: CompiledPolicy, act: Activation, matched: list[CompiledRule], factors: list[RiskFactor],
             score: int, failures: list[EvalFailure]) -> Decision:
    matches = rank([_as_match(r) for r in matched])
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


def _as_match(r: CompiledRule) -> Match:
    return Match(
        rule=r.ir.id, package=r.ir.package, effect=r.ir.effect, reason_code=r.ir.reason_code,
        specificity=r.ir.specificity, priority=r.ir.priority, paths=r.ir.request_paths,
        location=r.location, is_default=r.ir.is_default,
    )
