"""The only place protobuf messages meet the domain: requests in, result dicts out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from gavel.app.agents import AgentFields
from gavel.app.errors import FieldViolation, InvalidRequest
from gavel.app.executions import ExecutionInput
from gavel.app.requests import ACTION_FIELDS, ACTOR_FIELDS, DecideInput, modified_action
from gavel.v1 import admin_pb2, agent_pb2, approval_pb2, common_pb2, decision_pb2, evidence_pb2, policy_pb2

MODE_NAMES = {common_pb2.MODE_MONITOR: "monitor", common_pb2.MODE_WARN: "warn",
              common_pb2.MODE_ENFORCE: "enforce", common_pb2.MODE_STRICT: "strict"}
MODE_VALUES = {v: k for k, v in MODE_NAMES.items()}
OUTCOMES = {"allow": common_pb2.OUTCOME_ALLOW, "deny": common_pb2.OUTCOME_DENY,
            "require_approval": common_pb2.OUTCOME_REQUIRE_APPROVAL}
STATES = {"approved": decision_pb2.DECISION_STATE_APPROVED, "denied": decision_pb2.DECISION_STATE_DENIED,
          "pending_approval": decision_pb2.DECISION_STATE_PENDING_APPROVAL,
          "expired": decision_pb2.DECISION_STATE_EXPIRED, "executed": decision_pb2.DECISION_STATE_EXECUTED,
          "execution_failed": decision_pb2.DECISION_STATE_EXECUTION_FAILED}
TIERS = {"low": decision_pb2.RISK_TIER_LOW, "medium": decision_pb2.RISK_TIER_MEDIUM,
         "high": decision_pb2.RISK_TIER_HIGH, "critical": decision_pb2.RISK_TIER_CRITICAL}
ON_TIMEOUT = {"deny": decision_pb2.TIMEOUT_ACTION_DENY, "allow": decision_pb2.TIMEOUT_ACTION_ALLOW,
              "escalate": decision_pb2.TIMEOUT_ACTION_ESCALATE}
EXECUTION_STATUS = {decision_pb2.EXECUTION_STATUS_SUCCEEDED: "succeeded",
                    decision_pb2.EXECUTION_STATUS_FAILED: "failed"}
RECONCILIATION = {"matched": decision_pb2.RECONCILIATION_STATUS_MATCHED,
                  "mismatched": decision_pb2.RECONCILIATION_STATUS_MISMATCHED,
                  "failed": decision_pb2.RECONCILIATION_STATUS_FAILED}
AGENT_STATUS = {"active": agent_pb2.AGENT_STATUS_ACTIVE, "paused": agent_pb2.AGENT_STATUS_PAUSED,
                "locked": agent_pb2.AGENT_STATUS_LOCKED}
AGENT_STATUS_NAMES = {v: k for k, v in AGENT_STATUS.items()}
ENVIRONMENTS = {"test": common_pb2.ENVIRONMENT_TEST, "live": common_pb2.ENVIRONMENT_LIVE}
ENVIRONMENT_NAMES = {v: k for k, v in ENVIRONMENTS.items()}


def _bad(field: str, description: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {description}", (FieldViolation(field, description),))


def _struct(message: struct_pb2.Struct, present: bool, field: str) -> dict | None:
    """A Struct as plain JSON values (what `json_format.MessageToDict` gives, numbers as floats),
    built directly: this runs on every decision. NaN and infinities have no JSON form."""
    return _fields(message, field) if present else None


def _fields(message: struct_pb2.Struct, field: str) -> dict:
    return {key: _value(value, field) for key, value in message.fields.items()}


def _value(value: struct_pb2.Value, field: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if number != number or number in (_INFINITY, -_INFINITY):
            raise _bad(field, "NaN and infinities are not JSON numbers")
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _fields(value.struct_value, field)
    if kind == "list_value":
        return [_value(member, field) for member in value.list_value.values]
    return None  # null_value, or no kind set (read as null, as MessageToDict does)


_INFINITY = float("inf")


def _timestamp(ts: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    if not present:
        return None
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise _bad("timestamp", "not a valid timestamp") from None


def duration(value: duration_pb2.Duration, field: str) -> timedelta:
    """A Duration as a timedelta; one beyond timedelta's range (about ±2.7 million years) is refused."""
    try:
        return value.ToTimedelta()
    except (OverflowError, ValueError):
        raise _bad(field, "out of range") from None


def _set_timestamp(target: timestamp_pb2.Timestamp, iso: str) -> None:
    if iso:
        target.FromDatetime(datetime.fromisoformat(iso))


# ---------------------------------------------------------------- requests in

def decide_input(req: decision_pb2.DecideRequest) -> DecideInput:
    if req.mode and req.mode not in MODE_NAMES:
        raise _bad("mode", f"unknown enum value {req.mode}")
    action = {name: getattr(req.action, name) for name in ACTION_FIELDS}
    return DecideInput(
        action=action,
        args=_struct(req.action.args, req.action.HasField("args"), "action.args"),
        agent_id=req.agent.id,
        session_id=req.agent.session_id,
        actors={name: getattr(req.actors, name) for name in ACTOR_FIELDS},
        rationale=req.rationale,
        context=_struct(req.context, req.HasField("context"), "context"),
        confidence=req.confidence if req.HasField("confidence") else None,
        input_hash=req.input_hash,
        mode=MODE_NAMES.get(req.mode),
        idempotency_key=req.idempotency_key,
        correlation_id=req.correlation_id,
    )


def execution_input(req: decision_pb2.ReportExecutionRequest) -> ExecutionInput:
    if req.status and req.status not in EXECUTION_STATUS:
        raise _bad("status", f"unknown enum value {req.status}")
    return ExecutionInput(
        decision_id=req.decision_id, decision_token=req.decision_token, status=EXECUTION_STATUS.get(req.status, ""),
        executed_at=_timestamp(req.executed_at, req.HasField("executed_at")), amount=req.amount,
        currency=req.currency, external_transaction_id=req.external_transaction_id, error_code=req.error_code,
        error_message=req.error_message, idempotency_key=req.idempotency_key)


def agent_fields(req: agent_pb2.RegisterAgentRequest | agent_pb2.UpdateAgentRequest,
                 masked: bool = False) -> AgentFields:
    if req.default_mode and req.default_mode not in MODE_NAMES:
        raise _bad("default_mode", f"unknown enum value {req.default_mode}")
    status = None
    if isinstance(req, agent_pb2.UpdateAgentRequest) and req.status:
        if req.status not in AGENT_STATUS_NAMES:
            raise _bad("status", f"unknown enum value {req.status}")
        status = AGENT_STATUS_NAMES[req.status]

    def text(name: str) -> str | None:
        value = getattr(req, name)
        return value if value or masked else None

    return AgentFields(
        name=text("name"), owner=text("owner"), control_tier=text("control_tier"), risk_level=text("risk_level"),
        allowed_actions=tuple(req.allowed_actions) if req.allowed_actions or masked else None,
        daily_limit=text("daily_limit"), monthly_limit=text("monthly_limit"),
        human_sponsor_id=text("human_sponsor_id"),
        default_mode=MODE_NAMES.get(req.default_mode, "") if req.default_mode or masked else None,
        status=status)


def mode_name(value: int, field: str) -> str:
    """A Mode as its name; "" for MODE_UNSPECIFIED."""
    if value and value not in MODE_NAMES:
        raise _bad(field, f"unknown enum value {value}")
    return MODE_NAMES.get(value, "")


def update_mask(req: agent_pb2.UpdateAgentRequest) -> tuple[str, ...]:
    return tuple(req.update_mask.paths)


def environment_name(value: int, field: str = "environment") -> str:
    if value == common_pb2.ENVIRONMENT_UNSPECIFIED:
        return ""
    if value not in ENVIRONMENT_NAMES:
        raise _bad(field, f"unknown enum value {value}")
    return ENVIRONMENT_NAMES[value]


# ---------------------------------------------------------------- results out

def decision(result: dict[str, Any]) -> decision_pb2.Decision:
    out = decision_pb2.Decision(
        decision_id=result["decision_id"], outcome=OUTCOMES[result["outcome"]], state=STATES[result["state"]],
        enforced=result["enforced"], warnings=result["warnings"], reason_code=result["reason_code"],
        reason_codes=result["reason_codes"], message=result["message"], decision_token=result["decision_token"],
        evidence_event_id=result.get("evidence_event_id", ""), correlation_id=result.get("correlation_id", ""),
        agent_id=result.get("agent_id", ""), mode=MODE_VALUES.get(result.get("mode", ""), 0),
    )
    risk = result["risk"]
    out.risk.score = risk["score"]
    out.risk.tier = TIERS[risk["tier"]]
    for f in risk["factors"]:
        out.risk.factors.add(factor=f["factor"], weight=f["weight"], rule=f["rule"])
    p = result["policy"]
    out.policy.package, out.policy.rule = p["package"], p["rule"]
    out.policy.bundle_hash, out.policy.bundle_version = p["bundle_hash"], p["bundle_version"]
    for m in result["matched_rules"]:
        file, _, line = m["location"].rpartition(":")
        out.matched_rules.add(rule_id=m["rule"], effect=OUTCOMES[m["effect"]], reason_code=m["reason_code"],
                              specificity=m["specificity"], priority=m["priority"],
                              location=common_pb2.SourceLocation(file=file, line=int(line or 0)))
    e = result["explain"]
    out.explain.summary, out.explain.json = e["summary"], e["json"]
    out.explain.next_steps.extend(e["next_steps"])
    a = result.get("approval")
    if a:
        out.approval.approval_id, out.approval.role = a["approval_id"], a["role"]
        out.approval.approvals_required = a["approvals_required"]
        out.approval.approvals_received = a["approvals_received"]
        _set_timestamp(out.approval.due_at, a["due_at"])
        out.approval.on_timeout = ON_TIMEOUT[a["on_timeout"]]
        out.approval.escalate_to = a.get("escalate_to", "")
    if result.get("obligations"):
        out.obligations.update(result["obligations"])
    _action_message(result.get("approved_action"), out.approved_action)
    out.approval_note = result.get("approval_note", "")
    _set_timestamp(out.created_at, result["created_at"])
    return out


def consumed(r: dict) -> decision_pb2.ConsumeTokenResponse:
    return decision_pb2.ConsumeTokenResponse(
        valid=r["valid"], jti=r["jti"], decision_id=r["decision_id"], agent_id=r["agent_id"],
        action_type=r["action_type"], amount=r["amount"], currency=r["currency"], enforced=r["enforced"],
        outcome=OUTCOMES[r["outcome"]])


def execution_report(r: dict) -> decision_pb2.ExecutionReport:
    out = decision_pb2.ExecutionReport(
        decision_id=r["decision_id"], status={v: k for k, v in EXECUTION_STATUS.items()}[r["status"]],
        amount=r["amount"], currency=r["currency"], external_transaction_id=r["external_transaction_id"],
        error_code=r["error_code"], error_message=r["error_message"])
    _set_timestamp(out.executed_at, r["executed_at"])
    rec = r["reconciliation"]
    out.reconciliation.status = RECONCILIATION[rec["status"]]
    out.reconciliation.authorized_amount = rec["authorized_amount"]
    out.reconciliation.executed_amount = rec["executed_amount"]
    out.reconciliation.variance = rec["variance"]
    return out


def agent(a: dict) -> agent_pb2.Agent:
    out = agent_pb2.Agent(
        agent_id=a["agent_id"], name=a["name"], owner=a["owner"], control_tier=a["control_tier"],
        risk_level=a["risk_level"], allowed_actions=a["allowed_actions"], daily_limit=a["daily_limit"],
        monthly_limit=a["monthly_limit"], human_sponsor_id=a["human_sponsor_id"],
        default_mode=MODE_VALUES.get(a["default_mode"], 0), status=AGENT_STATUS[a["status"]],
        spend_today=a["spend_today"], spend_month=a["spend_month"])
    _set_timestamp(out.created_at, a["created_at"])
    _set_timestamp(out.updated_at, a["updated_at"])
    return out


def tenant(t: dict) -> admin_pb2.Tenant:
    out = admin_pb2.Tenant(tenant_id=t["tenant_id"], name=t["name"])
    _set_timestamp(out.created_at, t["created_at"])
    return out


def api_key(k: dict) -> admin_pb2.ApiKey:
    out = admin_pb2.ApiKey(key_id=k["key_id"], tenant=k["tenant"],
                           environment=ENVIRONMENTS.get(k["environment"], 0), roles=k["roles"],
                           principal=k["principal"], description=k["description"], agents=k["agents"])
    _set_timestamp(out.created_at, k["created_at"])
    _set_timestamp(out.revoked_at, k["revoked_at"])
    return out


def tenant_settings(t: dict) -> admin_pb2.TenantSettings:
    out = admin_pb2.TenantSettings(tenant=t["tenant"], environment=ENVIRONMENTS[t["environment"]],
                                   minimum_mode=MODE_VALUES[t["minimum_mode"]], updated_by=t["updated_by"])
    _set_timestamp(out.update_time, t["updated_at"])
    return out


def ledger_event(e) -> evidence_pb2.LedgerEvent:
    out = evidence_pb2.LedgerEvent(sequence=e.sequence, type=e.type, payload_json=e.payload_json,
                                   prev_hash=e.prev_hash, hash=e.hash, event_id=e.event_id)
    out.created_at.FromDatetime(e.created_at)
    return out


def checkpoint(c) -> evidence_pb2.Checkpoint:
    out = evidence_pb2.Checkpoint(tree_size=c.tree_size, root_hash=c.root_hash, key_id=c.key_id,
                                  signature=c.signature, note=c.note, origin=c.origin)
    out.timestamp.FromDatetime(c.created_at)
    return out


EXPORT_FORMATS = {evidence_pb2.EXPORT_FORMAT_UNSPECIFIED: "jsonl", evidence_pb2.EXPORT_FORMAT_JSON_LINES: "jsonl",
                  evidence_pb2.EXPORT_FORMAT_CSV: "csv"}


def export_format(value: int) -> str:
    if value not in EXPORT_FORMATS:
        raise _bad("format", f"unknown enum value {value}")
    return EXPORT_FORMATS[value]


def optional_time(message, field: str) -> datetime | None:
    return _timestamp(getattr(message, field), message.HasField(field))


APPROVAL_STATUS = {"pending": approval_pb2.APPROVAL_STATUS_PENDING, "approved": approval_pb2.APPROVAL_STATUS_APPROVED,
                   "denied": approval_pb2.APPROVAL_STATUS_DENIED, "modified": approval_pb2.APPROVAL_STATUS_MODIFIED,
                   "expired": approval_pb2.APPROVAL_STATUS_EXPIRED}
APPROVAL_STATUS_NAMES = {v: k for k, v in APPROVAL_STATUS.items()}
RESOLUTIONS = {approval_pb2.RESOLUTION_ACTION_APPROVE: "approve", approval_pb2.RESOLUTION_ACTION_DENY: "deny",
               approval_pb2.RESOLUTION_ACTION_MODIFY: "modify", approval_pb2.RESOLUTION_ACTION_ESCALATE: "escalate"}


def _action_message(a: dict | None, target: common_pb2.Action) -> None:
    if not a:
        return
    for name in ACTION_FIELDS:
        if a.get(name) not in (None, ""):
            setattr(target, name, str(a[name]))
    if a.get("args"):
        target.args.update(a["args"])


def approval(t: dict) -> approval_pb2.Approval:
    out = approval_pb2.Approval(
        approval_id=t["approval_id"], decision_id=t["decision_id"], status=APPROVAL_STATUS[t["status"]],
        role=t["role"], original_role=t["original_role"], approvals_required=t["approvals_required"],
        approvals_received=t["approvals_received"], approvers=t["approvers"], on_timeout=ON_TIMEOUT[t["on_timeout"]],
        escalate_to=t["escalate_to"], agent_id=t["agent_id"], reason_code=t["reason_code"],
        requester_id=t["requester_id"], human_sponsor_id=t["human_sponsor_id"])
    _set_timestamp(out.due_at, t["due_at"])
    _set_timestamp(out.created_at, t["created_at"])
    _set_timestamp(out.updated_at, t["updated_at"])
    _action_message(t["action"], out.action)
    _action_message(t["modified_action"], out.modified_action)
    for s in t["steps"]:
        step = out.steps.add(principal=s["principal"], role=s["role"], action=s["action"], note=s["note"],
                             sod_result=s["sod_result"])
        _set_timestamp(step.at, s["at"])
    return out


def resolution(req: approval_pb2.ResolveApprovalRequest):
    from gavel.app.approvals import Resolution

    if req.action not in RESOLUTIONS:
        raise _bad("action", "must be APPROVE, DENY, MODIFY or ESCALATE")
    modified = None
    if req.HasField("modified_action"):
        m = req.modified_action
        change: dict[str, Any] = {name: getattr(m, name) for name in ACTION_FIELDS if getattr(m, name)}
        if m.HasField("args"):
            change["args"] = _fields(m.args, "modified_action.args")
        # the checks the REST callback makes: limits, NUL, amount/currency, Struct numbers as JCS numbers
        modified = modified_action(change)
    if len(req.note) > 2000:
        raise _bad("note", "longer than 2000 characters")
    if not req.approval_id:
        raise _bad("approval_id", "required")
    return Resolution(req.approval_id, RESOLUTIONS[req.action], req.note, modified, req.escalate_to,
                      req.idempotency_key)


def diagnostic(d: dict) -> policy_pb2.Diagnostic:
    return policy_pb2.Diagnostic(severity=d["severity"], code=d["code"], message=d["message"], help=d.get("help", ""),
                                 location=common_pb2.SourceLocation(file=d["file"], line=d["line"], column=d["column"]))


def active_bundle(a: dict) -> policy_pb2.ActiveBundle:
    out = policy_pb2.ActiveBundle(bundle_hash=a["bundle_hash"], version=a["version"],
                                  environment=ENVIRONMENTS.get(a["environment"], 0))
    _set_timestamp(out.activated_at, a["activated_at"])
    return out


def replay_result(r: dict) -> policy_pb2.ReplayResult:
    if "summary" in r:
        s = r["summary"]
        return policy_pb2.ReplayResult(summary=policy_pb2.ReplaySummary(
            evaluated=s["evaluated"], changed=s["changed"], transitions=s["transitions"],
            bundle_hash=s["bundle_hash"]))
    out = policy_pb2.ReplayResult(
        decision_id=r["decision_id"], old_outcome=OUTCOMES[r["old_outcome"]], new_outcome=OUTCOMES[r["new_outcome"]],
        old_reason_code=r["old_reason_code"], new_reason_code=r["new_reason_code"],
        old_explain_json=r["old_explain_json"], new_explain_json=r["new_explain_json"])
    _set_timestamp(out.decided_at, r["decided_at"])
    return out


def jwks_json(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))
