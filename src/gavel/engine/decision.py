"""What the engine answers: a `Decision`, fully deterministic (no ids, clocks or timings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gavel.lang.values import to_json


@dataclass(frozen=True, slots=True)
class Route:
    role: str
    approvals: int
    timeout: timedelta
    on_timeout: str
    escalate_to: str | None = None

    def to_dict(self) -> dict:
        return {
            "role": self.role,
            "approvals": self.approvals,
            "timeout_seconds": int(self.timeout.total_seconds()),
            "on_timeout": self.on_timeout,
            "escalate_to": self.escalate_to,
        }


@dataclass(frozen=True, slots=True)
class Match:
    """One rule (or package default) that matched."""

    rule: str
    package: str
    effect: str
    reason_code: str
    specificity: int
    priority: int
    paths: tuple[str, ...]
    location: str
    is_default: bool = False

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "effect": self.effect,
            "reason_code": self.reason_code,
            "specificity": self.specificity,
            "priority": self.priority,
            "paths": list(self.paths),
            "location": self.location,
            "default": self.is_default,
        }


@dataclass(frozen=True, slots=True)
class RiskFactor:
    factor: str
    weight: int
    rule: str

    def to_dict(self) -> dict:
        return {"factor": self.factor, "weight": self.weight, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class EvalFailure:
    rule: str
    message: str
    location: str

    def to_dict(self) -> dict:
        return {"rule": self.rule, "message": self.message, "location": self.location}


@dataclass(slots=True)
class Decision:
    """The engine's answer. Read-only by contract: not frozen only because a frozen dataclass
    costs ~2 µs more to build, a tenth of a decision's budget."""

    outcome: str  # allow | deny | require_approval
    reason_code: str
    reason_codes: tuple[str, ...]
    rule: str | None
    message: str
    matches: tuple[Match, ...]
    why: str
    risk_score: int
    risk_tier: str
    risk_factors: tuple[RiskFactor, ...]
    route: Route | None
    obligations: dict[str, Any]
    errors: tuple[EvalFailure, ...]
    bundle_hash: str

    @property
    def matched_rules(self) -> tuple[str, ...]:
        return tuple(m.rule for m in self.matches)

    @property
    def explain(self) -> dict:
        return build_explain(self)

    def to_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "reason_code": self.reason_code,
            "reason_codes": list(self.reason_codes),
            "rule": self.rule,
            "message": self.message,
            "matched_rules": list(self.matched_rules),
            "risk": {
                "score": self.risk_score,
                "tier": self.risk_tier,
                "factors": [f.to_dict() for f in self.risk_factors],
            },
            "route": self.route.to_dict() if self.route else None,
            "obligations": to_json(self.obligations),
            "bundle_hash": self.bundle_hash,
            "explain": self.explain,
        }


def _next_steps(d: Decision) -> list[str]:
    if d.errors:
        return ["fix the rule that failed to evaluate; Gavel denies while a rule cannot be evaluated"]
    if d.outcome == "allow":
        return ["the action may proceed"]
    if d.outcome == "require_approval" and d.route is not None:
        r = d.route
        hours = int(r.timeout.total_seconds()) // 3600
        seconds = int(r.timeout.total_seconds())
        within = f"{hours}h" if hours and seconds % 3600 == 0 else f"{seconds}s"
        plural = "s" if r.approvals != 1 else ""
        then = f"escalate to `{r.escalate_to}`" if r.on_timeout == "escalate" else r.on_timeout
        return [f"wait for {r.approvals} approval{plural} from role `{r.role}` within {within}; on timeout: {then}"]
    if d.reason_code == "policy.no_match":
        return ["no rule covers this request: add a rule or a package `default`"]
    return ["do not proceed; change the request or ask a policy owner to review the rule"]


def build_explain(d: Decision) -> dict:
    if d.rule is None:
        summary = f"{d.outcome}: {d.reason_code}"
    else:
        others = len(d.matches) - 1
        tail = f" over {others} other match{'es' if others != 1 else ''}" if others > 0 else ""
        summary = f"{d.outcome} by {d.rule} ({d.reason_code}): {d.why}{tail}"
    return {
        "summary": summary,
        "winner": None if d.rule is None else {"rule": d.rule, "why": d.why},
        "matched": [m.to_dict() for m in d.matches],
        "risk": {"score": d.risk_score, "tier": d.risk_tier, "factors": [f.to_dict() for f in d.risk_factors]},
        "errors": [e.to_dict() for e in d.errors],
        "next_steps": _next_steps(d),
    }
