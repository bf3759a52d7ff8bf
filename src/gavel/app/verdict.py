"""One verdict for every path: Decide (and DecideStream), ExplainDecision, ReplayBundle and the
approval finaliser all judge a request here, so a dry run, a replay and an approval can never
answer what Decide would not.

A request is judged in this order (README §Decisions, modes and tokens):

1. the agent's status: a paused or locked agent is refused (AGENT_PAUSED, AGENT_LOCKED) before
   any rule runs;
2. the mode: the strictest of the environment's minimum mode (an operator's setting, ENFORCE
   unless changed), the agent's registered default mode and the request's own. A request may make
   the mode stricter, never looser: a looser one is raised, with a warning in the decision — the
   caller is the party enforcement protects against, so MONITOR and WARN are the operator's call;
3. the rules, which see the mode applied;
4. STRICT's own denials: an unregistered or inactive agent, an action outside its
   `allowed_actions`, no `input_hash`, a key not bound to the agent;
5. enforcement: ENFORCE and STRICT follow the outcome; MONITOR and WARN let the action proceed
   (`enforced = false`; WARN lists the would-be outcome in the warnings);
6. the state: approved when the action may proceed, else denied or pending_approval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gavel.app import budgets, settings
from gavel.app.errors import AgentLocked, AgentPaused, GavelError
from gavel.app.model import MODES, AgentRecord, DecisionRecord
from gavel.app.ports import UnitOfWork
from gavel.app.principal import Principal
from gavel.app.requests import DecideInput, engine_request
from gavel.engine.decision import Decision
from gavel.engine.engine import CompiledEngine

RANK = {mode: rank for rank, mode in enumerate(MODES)}  # monitor < warn < enforce < strict
ENFORCING = ("enforce", "strict")

STRICT_UNREGISTERED = "strict.agent_unregistered"
STRICT_INACTIVE = "strict.agent_inactive"
STRICT_ACTION = "strict.action_not_allowed"
STRICT_UNVERIFIED = "strict.input_unverified"
STRICT_UNBOUND = "strict.agent_unbound"


def applied_mode(requested: str | None, agent_default: str | None, minimum: str) -> tuple[str, tuple[str, ...]]:
    """The mode a request runs in, and the warning when the one it asked for was looser."""
    floor, source = minimum, "this environment's minimum mode"
    if agent_default is not None and RANK[agent_default] > RANK[floor]:
        floor, source = agent_default, "the agent's default mode"
    if requested is None or RANK[requested] >= RANK[floor]:
        return requested or floor, ()
    return floor, (f"mode {requested.upper()} was raised to {floor.upper()} ({source}): "
                   "a request may make the mode stricter, never looser",)


def stopped(status: str | None, agent_id: str) -> GavelError | None:
    """The refusal for a paused or locked agent (None for an active or unregistered one)."""
    if status == "paused":
        return AgentPaused(f"agent `{agent_id}` is paused")
    if status == "locked":
        return AgentLocked(f"agent `{agent_id}` is locked")
    return None


def agent_facts(agent: AgentRecord | None) -> dict[str, Any]:
    """What STRICT reads about the agent, in the shape of the facts the rules see."""
    if agent is None:
        return {"registered": False}
    return {"registered": True, "status": agent.status, "allowed_actions": list(agent.allowed_actions)}


def strict_denial(agent: Mapping[str, Any], action_type: str, input_hash: str, key_bound: bool) -> str | None:
    """STRICT's reason to deny, from the agent's facts (as recorded with a decision), or None."""
    if not agent.get("registered"):
        return STRICT_UNREGISTERED
    if agent.get("status") != "active":
        return STRICT_INACTIVE
    if action_type not in agent.get("allowed_actions", ()):
        return STRICT_ACTION
    if not input_hash:
        return STRICT_UNVERIFIED
    if not key_bound:
        return STRICT_UNBOUND
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # the rules' outcome, or deny for a STRICT denial
    reason_code: str
    message: str
    mode: str  # the mode applied
    enforced: bool
    state: str  # approved | denied | pending_approval
    warnings: tuple[str, ...]

    @property
    def may_proceed(self) -> bool:
        return self.state == "approved"


def verdict(outcome: str, reason_code: str, message: str, *, mode: str, agent: Mapping[str, Any],
            action_type: str, input_hash: str, key_bound: bool, warnings: Sequence[str] = ()) -> Verdict:
    """Steps 4–6 over the rules' answer (`outcome`, `reason_code`, `message`)."""
    if mode == "strict":
        denial = strict_denial(agent, action_type, input_hash, key_bound)
        if denial is not None:
            outcome, reason_code, message = "deny", denial, f"denied in STRICT mode: {denial}"
    enforced = mode in ENFORCING
    may_proceed = outcome == "allow" or not enforced
    state = "approved" if may_proceed else "denied" if outcome == "deny" else "pending_approval"
    notes = list(warnings)
    if mode == "warn" and outcome != "allow":
        notes.append(f"would {outcome}: {reason_code}")
    return Verdict(outcome, reason_code, message, mode, enforced, state, tuple(notes))


@dataclass(frozen=True, slots=True)
class Judgement:
    """A request judged: what the rules saw and said, and the verdict over it."""

    agent: AgentRecord | None
    facts: dict[str, Any]
    request: dict[str, Any]  # what the engine saw
    decision: Decision
    verdict: Verdict


def judge(uow: UnitOfWork, p: Principal, inp: DecideInput, engine: CompiledEngine, now: datetime) -> Judgement:
    """Steps 1–6 for a Decide or ExplainDecision request, reading the agent, its spend and the
    environment's minimum mode in `uow` (Decide's write unit, or Explain's read)."""
    agent = uow.agents.get(p.tenant_id, p.environment, inp.agent_id)
    refusal = stopped(agent.status if agent is not None else None, inp.agent_id)
    if refusal is not None:
        raise refusal
    mode, raised = applied_mode(inp.mode, agent.default_mode if agent is not None else None,
                                settings.minimum_mode(uow, p.tenant_id, p.environment))
    facts = budgets.facts_for(uow, agent, now)
    request = engine_request(inp, mode)
    d = engine.decide_at(request, facts, now)
    v = verdict(d.outcome, d.reason_code, d.message, mode=mode, agent=facts["agent"],
                action_type=inp.action["type"], input_hash=inp.input_hash, key_bound=p.is_bound_to(inp.agent_id),
                warnings=raised)
    return Judgement(agent, facts, request, d, v)


def rejudge(record: DecisionRecord, d: Decision) -> Verdict:
    """The verdict a recorded decision gets when its stored request and facts are decided again
    (ReplayBundle): its mode and the facts, input hash and key binding recorded with it."""
    request = record.request
    return verdict(d.outcome, d.reason_code, d.message, mode=record.mode, agent=record.facts.get("agent", {}),
                   action_type=request.get("action", {}).get("type", ""), input_hash=request.get("input_hash", ""),
                   key_bound=request.get("key_bound", True))  # decisions recorded before keys were bound: as then


def withheld_after_approval(decision: DecisionRecord, agent: AgentRecord | None,
                            action: Mapping[str, Any]) -> str | None:
    """Why an approved decision gets no token after all, or None. People approved what the rules
    routed to them, so the rules' part is an allow; the agent's status now and STRICT's checks
    (with the agent as it is now) still apply, as they would to a Decide."""
    refusal = stopped(agent.status if agent is not None else None, decision.agent_id)
    if refusal is not None:
        return f"approved, but no token was issued: {refusal.message} ({refusal.reason})"
    v = verdict("allow", decision.reason_code, "", mode=decision.mode, agent=agent_facts(agent),
                action_type=str(action.get("type", "")), input_hash=decision.request.get("input_hash", ""),
                key_bound=decision.request.get("key_bound", True))
    if not v.may_proceed:
        return f"approved, but no token was issued: denied in STRICT mode ({v.reason_code})"
    return None
