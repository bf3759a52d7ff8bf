"""The Decide use case: validate, judge, sign, reserve, record — atomically.

Everything from reading the agent's spend to recording the decision happens in one write unit,
so budgets hold under concurrency and an acknowledged decision is committed before the caller
sees it. How a request is judged (modes, paused and locked agents, STRICT, enforcement) is
`gavel.app.verdict`, shared with ExplainDecision, ReplayBundle and the approval finaliser; the
mode recorded, signed into the token and reserved against is the mode applied, never a looser
one the caller asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from gavel.app import approvals, budgets, ledger, tokens
from gavel.app.errors import NotFound
from gavel.app.idempotency import once
from gavel.app.ids import new_id
from gavel.app.model import DecisionRecord
from gavel.app.policies import PolicyRegistry
from gavel.app.ports import PolicyCompiler, Store, UnitOfWork
from gavel.app.principal import Principal
from gavel.app.requests import DecideInput, bound_action, fingerprint_fields, validate
from gavel.app.verdict import Verdict, judge
from gavel.crypto.jws import args_hash
from gavel.engine.decision import Decision
from gavel.engine.engine import CompiledEngine
from gavel.ledger.canonical import canonical_json


@dataclass(frozen=True)
class Deps:
    store: Store
    policies: PolicyRegistry
    signing: tokens.SigningKeys
    token_settings: tokens.TokenSettings
    clock: Callable[[], datetime]
    random_bytes: Callable[[int], bytes]
    sod_conflicts: frozenset[tuple[str, str]] = frozenset()  # (held role, task role) pairs that may not approve
    require_signed_bundles: bool = False
    publisher_keys: dict = field(default_factory=dict)  # kid → PublicKey of trusted bundle publishers
    compiler: PolicyCompiler = field(kw_only=True)  # compiles tenants' policy text off the event loop


def _result(decision_id: str, d: Decision, v: Verdict, *, warnings: list[str], token: str, agent_id: str,
            version: str, now: datetime, correlation_id: str, approval: dict | None) -> dict[str, Any]:
    """The Decision as every RPC answers it (Decide, GetDecision, ExplainDecision, replays)."""
    outcome, reason_code, message = v.outcome, v.reason_code, v.message
    explain = d.explain
    if reason_code != d.reason_code:
        explain = {**explain, "summary": f"{outcome}: {reason_code} (STRICT mode); rules said {explain['summary']}"}
    return {
        "decision_id": decision_id, "outcome": outcome, "state": v.state, "enforced": v.enforced,
        "warnings": warnings, "reason_code": reason_code,
        "reason_codes": [reason_code] if reason_code != d.reason_code else list(d.reason_codes),
        "message": message,
        "risk": {"score": d.risk_score, "tier": d.risk_tier, "factors": [f.to_dict() for f in d.risk_factors]},
        "policy": {"package": d.rule.rsplit(".", 1)[0] if d.rule else "", "rule": d.rule or "",
                   "bundle_hash": d.bundle_hash, "bundle_version": version},
        "matched_rules": [m.to_dict() for m in d.matches],
        "explain": {"summary": explain["summary"], "next_steps": explain["next_steps"],
                    "json": canonical_json(_jsonable(explain))},
        "decision_token": token, "approval": approval, "obligations": _jsonable(d.obligations),
        "evidence_event_id": "", "created_at": now.isoformat(), "correlation_id": correlation_id,
        "agent_id": agent_id, "mode": v.mode,
    }


def _jsonable(value: Any) -> Any:
    from gavel.lang.values import to_json

    return to_json(value)


class DecideUseCase:
    def __init__(self, deps: Deps):
        self.deps = deps

    async def decide(self, principal: Principal, inp: DecideInput) -> dict[str, Any]:
        validate(inp)
        principal.check_acts_for(inp.agent_id)  # before the idempotency key can replay another agent's answer
        engine, version = self.deps.policies.active(principal.tenant_id, principal.environment)
        keys = self.deps.signing.keyset()
        return await self.deps.store.write(lambda uow: self._unit(uow, principal, inp, engine, version, keys),
                                           chain=(principal.tenant_id, principal.environment))

    def _unit(self, uow: UnitOfWork, p: Principal, inp: DecideInput, engine: CompiledEngine, version: str,
              keys) -> dict[str, Any]:
        now = self.deps.clock()

        def replay(response: dict) -> dict:
            record = uow.decisions.get(p.tenant_id, p.environment, response["decision_id"])
            if record is None:  # pragma: no cover - the record is written with the key
                raise NotFound("the original decision is gone")
            return record.result

        return once(uow, tenant_id=p.tenant_id, environment=p.environment, operation="DecisionService.Decide",
                    key=inp.idempotency_key, fields=fingerprint_fields(inp), now=now,
                    run=lambda: self._decide(uow, p, inp, engine, version, keys, now), replay=replay)

    def _decide(self, uow: UnitOfWork, p: Principal, inp: DecideInput, engine: CompiledEngine, version: str,
                keys, now: datetime) -> dict[str, Any]:
        judged = judge(uow, p, inp, engine, now)
        agent, facts, request, d, v = judged.agent, judged.facts, judged.request, judged.decision, judged.verdict

        decision_id = new_id("dec", now, self.deps.random_bytes)
        amount = Decimal(inp.action["amount"]) if inp.action.get("amount") else None
        token_text, token_jti = "", None
        if v.may_proceed:
            token_jti = new_id("tok", now, self.deps.random_bytes)
            token_text, token_record = tokens.issue(
                keys, self.deps.token_settings, jti=token_jti, tenant_id=p.tenant_id, environment=p.environment,
                decision_id=decision_id, agent_id=inp.agent_id, action_type=inp.action["type"], amount=amount,
                currency=inp.action.get("currency") or None, args_hash=args_hash(bound_action(inp)), now=now,
                enforced=v.enforced, outcome=v.outcome)
            uow.tokens.add(token_record)
            if agent is not None and amount is not None:
                budgets.reserve(uow, agent, decision_id, amount, now)
        approval = approval_id = None
        if v.state == "pending_approval" and d.route is not None:
            approval_id = new_id("apr", now, self.deps.random_bytes)
            approval = {"approval_id": approval_id, "role": d.route.role, "approvals_required": d.route.approvals,
                        "approvals_received": 0, "due_at": (now + d.route.timeout).isoformat(),
                        "on_timeout": d.route.on_timeout, "escalate_to": d.route.escalate_to or ""}
        result = _result(decision_id, d, v, warnings=list(v.warnings), token=token_text, agent_id=inp.agent_id,
                         version=version, now=now, correlation_id=inp.correlation_id, approval=approval)
        event_id = new_id("evt", now, self.deps.random_bytes)
        result["evidence_event_id"] = event_id
        stored_request = _jsonable_request(request, inp, p)
        uow.decisions.add(DecisionRecord(
            decision_id=decision_id, tenant_id=p.tenant_id, environment=p.environment, agent_id=inp.agent_id,
            created_at=now, outcome=v.outcome, state=v.state, mode=v.mode, enforced=v.enforced,
            reason_code=v.reason_code, bundle_hash=d.bundle_hash, request=stored_request, facts=facts, result=result,
            token_jti=token_jti, amount=amount, currency=inp.action.get("currency") or None,
            correlation_id=inp.correlation_id))
        ledger.record(uow, p.tenant_id, p.environment, type="decision.recorded", subject=decision_id,
                      decision_id=decision_id, at=now, random_bytes=self.deps.random_bytes, event_id=event_id, data={
                          "agent_id": inp.agent_id, "outcome": v.outcome, "state": v.state, "mode": v.mode,
                          "enforced": v.enforced, "reason_code": v.reason_code, "rule": d.rule or "",
                          "matched_rules": list(d.matched_rules), "bundle_hash": d.bundle_hash,
                          "bundle_version": version, "risk": {"score": d.risk_score, "tier": d.risk_tier},
                          "request": stored_request, "facts": facts, "input_hash": inp.input_hash,
                          "token": None if token_jti is None else {
                              "jti": token_jti, "args_hash": token_record.args_hash,
                              "expires_at": token_record.expires_at.isoformat()},
                          "summary": result["explain"]["summary"], "correlation_id": inp.correlation_id,
                      })
        if approval_id is not None:
            approvals.create(
                uow, approval_id=approval_id, tenant_id=p.tenant_id, environment=p.environment,
                decision_id=decision_id, agent_id=inp.agent_id, route=d.route, action=bound_action(inp),
                reason_code=v.reason_code, requester_id=inp.actors.get("requester_id", ""),
                human_sponsor_id=inp.actors.get("human_sponsor_id", "") or (agent.human_sponsor_id if agent else ""),
                now=now, random_bytes=self.deps.random_bytes)
        return result

    async def get(self, principal: Principal, decision_id: str) -> dict[str, Any]:
        record = await self.deps.store.read(lambda uow: uow.decisions.get(
            principal.tenant_id, principal.environment, decision_id))
        if record is None:
            raise NotFound(f"no decision `{decision_id}`")
        principal.check_acts_for(record.agent_id)
        return record.result


def _jsonable_request(request: dict, inp: DecideInput, p: Principal) -> dict:
    """The stored request: what the engine saw, plus the caller's evidence hash and whether the
    caller's key was bound to the agent (what a replay or an approval needs to judge it again)."""
    stored = ledger.json_value(canonical_json(request))
    if inp.input_hash:
        stored["input_hash"] = inp.input_hash
    stored["key_bound"] = p.is_bound_to(inp.agent_id)
    return stored
