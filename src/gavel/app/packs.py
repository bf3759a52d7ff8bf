"""Evidence packs: everything an auditor needs about one decision, signed.

The pack holds the decision as answered, the request and facts the rules saw, the policy
snapshot (bundle hash and the text of the matched rules), the decision's events with their
inclusion proofs against a signed checkpoint, the token lifecycle, the execution and its
reconciliation, agent governance, approvals and segregation-of-duties checks, and a compliance
assessment; then a SHA-256 fingerprint and an Ed25519 signature (`gavel.ledger.pack.seal`).
`gavel verify` checks it offline with nothing but the public keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gavel.app.errors import NotFound
from gavel.app.evidence import MerkleCache, b64, current_checkpoint
from gavel.app.ledger import json_value
from gavel.app.model import DecisionRecord, LedgerEvent
from gavel.app.ports import UnitOfWork
from gavel.crypto.keys import KeySet
from gavel.ledger.canonical import canonical_json
from gavel.ledger.pack import PACK_FORMAT, seal


def _event_doc(e: LedgerEvent) -> dict:
    return {"sequence": e.sequence, "type": e.type, "payload_json": e.payload_json, "prev_hash": e.prev_hash.hex(),
            "hash": e.hash.hex()}


def _control(id_: str, name: str, status: str, evidence: str) -> dict:
    return {"id": id_, "name": name, "status": status, "evidence": evidence}


def assess(decision: DecisionRecord, events: list[LedgerEvent], token: Any, execution: Any) -> list[dict]:
    """The compliance controls and what each rests on (met, unmet, review_required, not_applicable)."""
    by_type: dict[str, list[LedgerEvent]] = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e)
    recorded = by_type.get("decision.recorded", [])
    consumed = by_type.get("token.consumed", [])
    reported = by_type.get("execution.reported", [])
    controls = []
    if recorded and all(recorded[0].sequence < e.sequence for e in consumed + reported):
        controls.append(_control("GAVEL-01", "policy evaluated before the action", "met",
                                 f"decision.recorded is event {recorded[0].sequence}, before any use of its token"))
    else:
        controls.append(_control("GAVEL-01", "policy evaluated before the action", "unmet",
                                 "no decision.recorded event precedes the action's events"))
    if decision.outcome != "require_approval" or not decision.enforced:
        controls.append(_control("GAVEL-02", "approval obtained when required", "not_applicable",
                                 f"the rules said {decision.outcome}; no approval was required"))
    elif decision.state in ("approved", "executed", "execution_failed"):
        controls.append(_control("GAVEL-02", "approval obtained when required", "met",
                                 "the decision was approved before a token was issued"))
    else:
        controls.append(_control("GAVEL-02", "approval obtained when required", "review_required",
                                 f"approval required; the decision is {decision.state}"))
    approvals = by_type.get("approval.recorded", [])
    controls.append(_control("GAVEL-03", "approver independent of the requester (SoD)",
                             "met" if approvals else "not_applicable",
                             f"{len(approvals)} approval(s), each passed the SoD checks" if approvals
                             else "no approver acted on this decision"))
    if token is None:
        controls.append(_control("GAVEL-04", "decision token used at most once", "not_applicable",
                                 "no token was issued"))
    else:
        status = "met" if len(consumed) <= 1 else "unmet"
        controls.append(_control("GAVEL-04", "decision token used at most once", status,
                                 f"token {token.jti} is {token.state}; consumed {len(consumed)} time(s)"))
    if execution is not None:
        status = {"matched": "met", "failed": "met", "mismatched": "review_required"}[execution.reconciliation_status]
        controls.append(_control("GAVEL-05", "execution reconciled", status,
                                 f"reconciliation {execution.reconciliation_status}, variance "
                                 f"{execution.variance if execution.variance is not None else 'n/a'}"))
    elif consumed:
        controls.append(_control("GAVEL-05", "execution reconciled", "review_required",
                                 "the token was used but no execution was reported"))
    else:
        controls.append(_control("GAVEL-05", "execution reconciled", "not_applicable", "nothing was executed"))
    controls.append(_control("GAVEL-06", "evidence chain intact", "met",
                             f"{len(events)} event(s), each hash-chained and proven in the signed checkpoint "
                             "(re-checked by `gavel verify`)"))
    return controls


def decision_events(uow: UnitOfWork, tenant_id: str, environment: str, decision_id: str) -> list[LedgerEvent]:
    """The events about this decision: those whose payload names it. Subjects are ids of several
    kinds (an agent may be registered under any id, a decision's among them), so a shared subject
    alone does not put an event in a decision's pack."""
    return [e for e in uow.ledger.for_subject(tenant_id, environment, decision_id)
            if json_value(e.payload_json).get("decision_id") == decision_id]


def agent_at_decision(decision: DecisionRecord) -> dict:
    """The agent as the rules saw it: the registry facts recorded with the decision (status,
    tier, limits, spend today and this month), not the registry as it is now."""
    facts = dict((decision.facts or {}).get("agent") or {"registered": False})
    spend = facts.pop("spend", None)
    out = {"agent_id": decision.agent_id, "as_of": decision.created_at.isoformat(), **facts}
    if isinstance(spend, dict):
        out["spend_today"], out["spend_month"] = spend.get("today"), spend.get("month")
    return out


def sponsor_at_decision(decision: DecisionRecord) -> dict:
    """The human sponsor approvers are checked against, and where it came from: the request's
    `actors.human_sponsor_id`, else the agent registry's (as recorded with the decision)."""
    requested = (decision.request.get("actors") or {}).get("human_sponsor_id") or ""
    if requested:
        return {"human_sponsor_id": requested, "human_sponsor_from": "request"}
    registered = ((decision.facts or {}).get("agent") or {}).get("human_sponsor_id") or ""
    if registered:
        return {"human_sponsor_id": registered, "human_sponsor_from": "registry"}
    return {"human_sponsor_id": None, "human_sponsor_from": None}


def rule_texts(engine, decision: DecisionRecord) -> list[dict]:
    """The source text of the rules that matched, from the bundle that decided."""
    out = []
    if engine is None or engine.bundle_hash != decision.bundle_hash:
        return out
    by_id = {r.ir.id: r for r in (*engine.policy.rules, *engine.policy.defaults)}
    for m in decision.result.get("matched_rules", []):
        compiled = by_id.get(m["rule"])
        if compiled is None:
            continue
        span = compiled.ir.span
        source = engine.policy.sources.get(span.file)
        text = "\n".join(source.text.splitlines()[span.line - 1: span.end_line]) if source else ""
        out.append({"rule": m["rule"], "location": m["location"], "text": text})
    return out


def build_pack(uow: UnitOfWork, merkle: MerkleCache, keys: KeySet, issuer: str, tenant_id: str, environment: str,
               decision_id: str, engine_for, now: datetime) -> str:
    """`engine_for(uow, bundle_hash)` finds the compiled bundle that made the decision (or None)."""
    decision = uow.decisions.get(tenant_id, environment, decision_id)
    if decision is None:
        raise NotFound(f"no decision `{decision_id}`")
    engine = engine_for(uow, decision.bundle_hash)
    events = decision_events(uow, tenant_id, environment, decision_id)
    checkpoint = current_checkpoint(uow, merkle, keys, issuer, tenant_id, environment, now)
    token = uow.tokens.get(decision.token_jti) if decision.token_jti else None
    execution = uow.executions.get(tenant_id, environment, decision_id)
    inclusion = [{"sequence": e.sequence, "leaf_index": e.sequence - 1, "tree_size": checkpoint.tree_size,
                  "audit_path": [h.hex() for h in merkle.inclusion(uow, tenant_id, environment, e.sequence - 1,
                                                                   checkpoint.tree_size)]}
                 for e in events]
    actors = decision.request.get("actors", {})
    pack = {
        "format": PACK_FORMAT,
        "generated_at": now.isoformat(),
        "tenant": tenant_id,
        "environment": environment,
        # the token itself stays out: a pack is evidence, not a way to obtain a usable token
        "decision": json_value(canonical_json({**decision.result, "decision_token": ""})),
        "request": decision.request,
        "facts": decision.facts,
        "policy": {"bundle_hash": decision.bundle_hash,
                   "bundle_version": decision.result.get("policy", {}).get("bundle_version", ""),
                   "rules": rule_texts(engine, decision)},
        "agent": agent_at_decision(decision),
        "token": None if token is None else {
            "jti": token.jti, "state": token.state, "args_hash": token.args_hash,
            "issued_at": token.issued_at.isoformat(), "expires_at": token.expires_at.isoformat(),
            "consumed_at": token.consumed_at.isoformat() if token.consumed_at else None,
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None},
        "execution": None if execution is None else json_value(canonical_json({
            "status": execution.status, "executed_at": execution.executed_at.isoformat(),
            "amount": execution.amount, "currency": execution.currency,
            "external_transaction_id": execution.external_transaction_id,
            "reconciliation": {"status": execution.reconciliation_status,
                               "authorized_amount": execution.authorized_amount,
                               "executed_amount": execution.executed_amount, "variance": execution.variance}})),
        "approvals": [json_value(e.payload_json) for e in events if e.type.startswith("approval.")],
        "sod": {"requester_id": actors.get("requester_id"), **sponsor_at_decision(decision),
                "checks": [json_value(e.payload_json) for e in events if e.type == "sod.checked"]},
        "risk": decision.result.get("risk", {}),
        "compliance": assess(decision, events, token, execution),
        "events": [_event_doc(e) for e in events],
        "proof": {"checkpoint": {"origin": checkpoint.origin, "tree_size": checkpoint.tree_size,
                                 "root_hash": b64(checkpoint.root_hash),
                                 "timestamp": checkpoint.created_at.isoformat(), "key_id": checkpoint.key_id,
                                 "note": checkpoint.note},
                  "inclusion": inclusion},
    }
    return canonical_json(seal(pack, keys.active))
