"""Audit exports: decisions in a time range, as JSON lines or CSV, in one of four views.

A view chooses the columns and names them the way that audience expects (docs/evidence.md):

- `generic` — every field of the decision, its token and its execution;
- `sox` — SOX 404 transaction testing: who initiated, what authorised it under which policy
  version, whether approval was required, what was executed and whether it reconciled;
- `eu_ai_act` — the EU AI Act's record-keeping (Art. 12) and human-oversight (Art. 14) view:
  the AI system, the input reference, the decision and its reasoning, risk, and oversight;
- `rbi` — the Reserve Bank of India's payment audit-trail view: transaction reference, maker
  and checker, channel, beneficiary, amounts and jurisdiction.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from gavel.app.model import DecisionRecord, ExecutionRecord
from gavel.ledger.canonical import canonical_decimal

Row = dict[str, Any]


def _dec(v) -> str:
    return canonical_decimal(v) if v is not None else ""


def _generic(d: DecisionRecord, e: ExecutionRecord | None) -> Row:
    r = d.result
    action = d.request.get("action", {})
    return {
        "decision_id": d.decision_id, "created_at": d.created_at.isoformat(), "agent_id": d.agent_id,
        "action_type": action.get("type", ""), "amount": _dec(d.amount), "currency": d.currency or "",
        "outcome": d.outcome, "state": d.state, "reason_code": d.reason_code, "rule": r["policy"]["rule"],
        "bundle_hash": d.bundle_hash, "bundle_version": r["policy"]["bundle_version"], "mode": d.mode,
        "enforced": d.enforced, "risk_score": r["risk"]["score"], "risk_tier": r["risk"]["tier"],
        "token_jti": d.token_jti or "", "execution_status": e.status if e else "",
        "reconciliation_status": e.reconciliation_status if e else "",
        "executed_amount": _dec(e.executed_amount) if e else "", "variance": _dec(e.variance) if e else "",
        "evidence_event_id": r.get("evidence_event_id", ""), "correlation_id": d.correlation_id,
    }


def _sox(d: DecisionRecord, e: ExecutionRecord | None) -> Row:
    r = d.result
    actors = d.request.get("actors", {})
    exception = d.outcome == "deny" or (e is not None and e.reconciliation_status != "matched")
    return {
        "control_id": "GAVEL-PDP-01", "transaction_id": d.decision_id, "transaction_date": d.created_at.isoformat(),
        "initiator": d.agent_id, "requester": actors.get("requester_id", ""),
        "authorization_result": d.outcome, "authorizing_rule": r["policy"]["rule"],
        "policy_version": d.bundle_hash, "approval_required": d.outcome == "require_approval",
        "approval_status": d.state, "amount": _dec(d.amount), "currency": d.currency or "",
        "executed_amount": _dec(e.executed_amount) if e else "",
        "reconciliation": e.reconciliation_status if e else "not_executed", "exception": exception,
        "evidence_reference": r.get("evidence_event_id", ""),
    }


def _eu_ai_act(d: DecisionRecord, e: ExecutionRecord | None) -> Row:
    r = d.result
    return {
        "record_id": d.decision_id, "timestamp_utc": d.created_at.isoformat(), "ai_system": d.agent_id,
        "deployer": d.tenant_id, "input_reference": d.request.get("input_hash", ""),
        "intended_action": d.request.get("action", {}).get("type", ""), "decision": d.outcome,
        "reasoning": r["explain"]["summary"], "risk_level": r["risk"]["tier"], "risk_score": r["risk"]["score"],
        "human_oversight": "required" if d.outcome == "require_approval" else "not_required",
        "oversight_outcome": d.state, "operating_mode": d.mode, "rule_applied": r["policy"]["rule"],
        "log_reference": r.get("evidence_event_id", ""),
    }


def _rbi(d: DecisionRecord, e: ExecutionRecord | None) -> Row:
    action = d.request.get("action", {})
    return {
        "txn_ref": d.decision_id, "txn_timestamp_utc": d.created_at.isoformat(), "channel": "ai_agent",
        "maker_id": d.agent_id, "checker_id": "", "beneficiary": action.get("entity", ""),
        "amount": _dec(d.amount), "currency": d.currency or "", "authorisation": d.outcome,
        "reason_code": d.reason_code, "jurisdiction": action.get("jurisdiction", ""),
        "business_unit": action.get("business_unit", ""), "risk_category": d.result["risk"]["tier"],
        "settlement_status": e.status if e else "", "external_reference": e.external_transaction_id if e else "",
        "audit_trail_ref": d.result.get("evidence_event_id", ""),
    }


VIEWS: dict[str, Callable[[DecisionRecord, ExecutionRecord | None], Row]] = {
    "generic": _generic, "sox": _sox, "eu_ai_act": _eu_ai_act, "rbi": _rbi,
}


def columns_of(view: str) -> list[str]:
    """The column names of a view (what its header row says)."""
    blank = DecisionRecord("", "", "", "", datetime(2000, 1, 1, tzinfo=UTC), "allow", "approved", "enforce", True,
                           "", "", {}, {}, {"policy": {"rule": "", "bundle_version": ""},
                                            "risk": {"score": 0, "tier": ""}, "explain": {"summary": ""}})
    return list(VIEWS[view](blank, None))


def encode(rows: Iterable[Row], fmt: str, view: str) -> Iterator[str]:
    """Text pieces of the export: a CSV header first, or one JSON object per line."""
    if fmt == "csv":
        columns = None
        for row in rows:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            if columns is None:
                columns = list(row)
                writer.writerow(columns)
            writer.writerow(["true" if v is True else "false" if v is False else v for v in row.values()])
            yield buffer.getvalue()
        if columns is None:  # no rows: still a header, so tools see the columns
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\r\n").writerow(columns_of(view))
            yield buffer.getvalue()
        return
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
