"""Human approvals: the task state machine, segregation of duties, timeouts.

| from    | event                                        | to       | effect on the decision                 |
|---------|----------------------------------------------|----------|----------------------------------------|
| pending | APPROVE, approvals still short of N          | pending  | approvals_received + 1                 |
| pending | APPROVE, the N-th distinct approval          | approved | approved; a token is issued            |
| pending | MODIFY the rules allow, or route no higher   | modified | counts as one approval; at N: approved, |
|         | than the task (same role, ≤ N approvals)     |          | the token bound to the modified action |
| pending | MODIFY the rules deny or route higher        | —        | INVALID_TRANSITION; nothing changes    |
| pending | DENY                                         | denied   | denied                                 |
| pending | ESCALATE                                     | pending  | routed to `escalate_to`                |
| pending | due time, on_timeout deny                    | expired  | expired                                |
| pending | due time, on_timeout allow                   | approved | approved by timeout; token issued      |
| pending | due time, on_timeout escalate (first time)   | pending  | routed to `escalate_to`; due again     |
|         |                                              |          | after the same timeout                 |
| pending | due time again after a timeout escalation    | expired  | expired                                |
| any other status | anything                            | —        | INVALID_TRANSITION                     |

A MODIFY that leaves approvals short of N keeps the task pending with the modified action;
later approvals approve that action. A modified action is a new question for the rules (the
active bundle, the decision's recorded facts and mode): a task may approve it only when the
rules would allow it or route it no higher than the task itself — to the task's role (as routed
or escalated) with at most the task's number of approvals. Anything higher is refused, not
re-routed: a task answers the request the agent made, and a manager's approval must never stand
in for the directors the rules want. The changed action gets its own route by its own Decide.

Segregation of duties (checked on every APPROVE and MODIFY, each check recorded as a
`sod.checked` event): the approver is not the request's requester, not the agent's human
sponsor (from the request or the registry), not someone who approved this task already, and
does not hold a role configured to conflict with the task's role. The approver's key must hold
the task's current role; admin does not imply it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gavel.app import ledger
from gavel.app.errors import FieldViolation, Forbidden, InvalidRequest, InvalidTransition, NotFound
from gavel.app.model import ApprovalRecord, DecisionRecord
from gavel.app.ports import UnitOfWork
from gavel.app.principal import Principal
from gavel.ledger.canonical import canonical_decimal, canonical_json

FINAL = ("approved", "denied", "modified", "expired")
DECISION_STATE = {"approved": "approved", "modified": "approved", "denied": "denied", "expired": "expired"}
ACTIONS = ("approve", "deny", "modify", "escalate")
MODIFIABLE = ("subtype", "amount", "currency", "entity", "business_unit", "jurisdiction", "tool", "resource", "args")


@dataclass(frozen=True)
class Resolution:
    approval_id: str
    action: str
    note: str = ""
    modified_action: dict[str, Any] | None = None
    escalate_to: str = ""
    idempotency_key: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a resolve did: the task after it, and a SoD refusal to raise once it is recorded."""

    approval: ApprovalRecord
    sod_refusal: str | None = None


def create(uow: UnitOfWork, *, approval_id: str, tenant_id: str, environment: str, decision_id: str, agent_id: str,
           route, action: dict, reason_code: str, requester_id: str, human_sponsor_id: str, now: datetime,
           random_bytes) -> ApprovalRecord:
    task = ApprovalRecord(
        approval_id=approval_id, tenant_id=tenant_id, environment=environment,
        decision_id=decision_id, agent_id=agent_id, status="pending", role=route.role, original_role=route.role,
        approvals_required=route.approvals, approvers=(), due_at=now + route.timeout,
        timeout_seconds=int(route.timeout.total_seconds()), on_timeout=route.on_timeout,
        escalate_to=route.escalate_to or "", escalated_on_timeout=False, action=action, modified_action=None,
        reason_code=reason_code, requester_id=requester_id, human_sponsor_id=human_sponsor_id, steps=(),
        created_at=now, updated_at=now)
    uow.approvals.add(task)
    ledger.record(uow, tenant_id, environment, type="approval.requested", subject=decision_id,
                  decision_id=decision_id, at=now, random_bytes=random_bytes,
                  data={"approval_id": task.approval_id, "role": task.role, "approvals_required": route.approvals,
                        "due_at": task.due_at.isoformat(), "on_timeout": task.on_timeout,
                        "escalate_to": task.escalate_to})
    return task


def summary(task: ApprovalRecord) -> dict:
    """The `approval` block of a decision."""
    return {"approval_id": task.approval_id, "role": task.role, "approvals_required": task.approvals_required,
            "approvals_received": len(task.approvers), "due_at": task.due_at.isoformat(),
            "on_timeout": task.on_timeout, "escalate_to": task.escalate_to}


def _step(principal: str, role: str, action: str, note: str, at: datetime, sod: str) -> dict:
    return {"principal": principal, "role": role, "action": action, "note": note, "at": at.isoformat(),
            "sod_result": sod}


def person(identity: str) -> str:
    """An identity as SoD compares it: `Alice@Acme.com ` and `alice@acme.com` are one person. The
    requester and sponsor ids come from the agent's request, the approver from a key's principal;
    spelling differences between the two must not let someone approve their own request."""
    return identity.strip().casefold()


def sponsors_checked(task: ApprovalRecord, requested: str, in_registry: str) -> list[dict]:
    """Each human sponsor `sod_check` compares an approver with, and where it came from: the
    task's (the request's sponsor, else the registry's when the decision was made) and the
    registry's now."""
    named = ((task.human_sponsor_id, "request" if requested else "registry"), (in_registry, "registry"))
    out: list[dict] = []
    for sponsor, source in named:
        if person(sponsor) and person(sponsor) not in {person(s["id"]) for s in out}:
            out.append({"id": sponsor, "from": source})
    return out


def sod_check(task: ApprovalRecord, p: Principal, conflicts: frozenset[tuple[str, str]],
              sponsor_in_registry: str) -> str | None:
    """Why this approver may not approve this task, or None."""
    who = p.principal
    me = person(who)
    if person(task.requester_id) and me == person(task.requester_id):
        return f"{who} requested this action and cannot approve it"
    if me in {person(s) for s in (task.human_sponsor_id, sponsor_in_registry) if person(s)}:
        return f"{who} is the agent's human sponsor and cannot approve its actions"
    if me in {person(a) for a in task.approvers}:
        return f"{who} has already approved this task; approvals must come from distinct people"
    for held in sorted(p.roles):
        if (held, task.role) in conflicts:
            return f"a key holding role `{held}` may not approve for role `{task.role}`"
    return None


def modification_refusal(task: ApprovalRecord, outcome: str, reason: str, route) -> str | None:
    """Why this task may not approve a modified action the rules answered `outcome` (with
    `reason`, and `route` for require_approval) about, or None when it may."""
    if outcome == "allow":
        return None
    if outcome == "deny":
        return f"the rules deny the modified action ({reason})"
    if route is None:  # fail closed: an approval nobody is named to give
        return f"the rules require an approval for the modified action ({reason}) but name no route"
    wanted = f"{_approvals(route.approvals)} from `{route.role}` ({reason})"
    if route.role not in (task.role, task.original_role) or route.approvals > task.approvals_required:
        return (f"the rules route the modified action to {wanted}; this task collects "
                f"{_approvals(task.approvals_required)} from `{task.role}`: approve or deny the action as "
                "requested, or have the agent ask for the changed one (its own decision routes it)")
    return None


def _approvals(n: int) -> str:
    return f"{n} approval" if n == 1 else f"{n} approvals"


def ending(task: ApprovalRecord, status: str) -> dict:
    """What the event that ends a task says about its decision: the webhooks `approval.resolved`
    and `authorization.finalized` are made from it (see gavel.app.webhooks)."""
    return {"status": status, "state": DECISION_STATE[status], "agent_id": task.agent_id,
            "reason_code": task.reason_code}


def approved_action(task: ApprovalRecord) -> dict | None:
    """The action the approvers approved, when it differs from the request."""
    if task.modified_action is None or canonical_json(task.modified_action) == canonical_json(task.action):
        return None
    return task.modified_action


def approval_note(task: ApprovalRecord) -> str:
    """What the approvers wrote with their APPROVE, MODIFY and DENY, in order, one note a line."""
    return "\n".join(s["note"] for s in task.steps if s["action"] in ("approve", "modify", "deny") and s["note"])


def resolve(uow: UnitOfWork, p: Principal, r: Resolution, now: datetime, random_bytes, conflicts,
            decide_modified, finalize) -> Outcome:
    """Apply one resolution. `decide_modified(decision, action) -> (outcome, reason, route)` re-runs
    the rules on a modified action; `finalize(uow, task, decision, verdict, now)` updates the decision."""
    if r.action not in ACTIONS:
        raise InvalidRequest("action must be APPROVE, DENY, MODIFY or ESCALATE",
                             (FieldViolation("action", "unknown"),))
    task = uow.approvals.get(p.tenant_id, p.environment, r.approval_id)
    if task is None:
        raise NotFound(f"no approval `{r.approval_id}`")
    if task.role not in p.approver_roles:
        raise Forbidden(f"this key does not hold the role `{task.role}` that the task is routed to")
    if task.status != "pending":
        raise InvalidTransition(f"approval `{task.approval_id}` is {task.status}; it cannot be resolved again")
    if now >= task.due_at:
        raise InvalidTransition(f"approval `{task.approval_id}` is past its due time ({task.due_at.isoformat()})")
    decision = uow.decisions.get(p.tenant_id, p.environment, task.decision_id)
    agent = uow.agents.get(p.tenant_id, p.environment, task.agent_id)

    def record(kind: str, data: dict) -> None:
        ledger.record(uow, p.tenant_id, p.environment, type=kind, subject=task.decision_id,
                      decision_id=task.decision_id, at=now, random_bytes=random_bytes,
                      data={"approval_id": task.approval_id, **data})

    def save(updated: ApprovalRecord) -> ApprovalRecord:
        updated = replace(updated, updated_at=now, version=task.version + 1)
        if not uow.approvals.update(updated, task.version):
            raise InvalidTransition(f"approval `{task.approval_id}` was changed by someone else; reload it")
        return updated

    if r.action == "escalate":
        target = r.escalate_to or task.escalate_to
        if not target:
            raise InvalidRequest("escalate_to is required: the route names no escalation role",
                                 (FieldViolation("escalate_to", "required"),))
        step = _step(p.principal, task.role, "escalate", r.note, now, "not_checked")
        updated = save(replace(task, role=target, steps=(*task.steps, step)))
        record("approval.escalated", {"from_role": task.role, "to_role": target, "by": p.principal, "note": r.note})
        finalize(uow, updated, decision, None, now)
        return Outcome(updated)
    if r.action == "deny":
        step = _step(p.principal, task.role, "deny", r.note, now, "not_checked")
        updated = save(replace(task, status="denied", steps=(*task.steps, step)))
        record("approval.resolved", {**ending(task, "denied"), "by": p.principal, "role": task.role, "note": r.note})
        finalize(uow, updated, decision, "denied", now)
        return Outcome(updated)

    registry_sponsor = agent.human_sponsor_id if agent else ""
    refusal = sod_check(task, p, conflicts, registry_sponsor)
    requested_sponsor = ((decision.request.get("actors") or {}).get("human_sponsor_id") or "") if decision else ""
    record("sod.checked", {"approver": p.principal, "role": task.role, "passed": refusal is None,
                           "reason": refusal or "approver is independent", "requester_id": task.requester_id,
                           "human_sponsors": sponsors_checked(task, requested_sponsor, registry_sponsor)})
    if refusal is not None:
        step = _step(p.principal, task.role, "sod_refused", r.note, now, refusal)
        return Outcome(save(replace(task, steps=(*task.steps, step))), refusal)

    modified = task.modified_action
    if r.action == "modify":
        modified = _modified(task.modified_action or task.action, r.modified_action)
        refusal = modification_refusal(task, *decide_modified(decision, modified))
        if refusal is not None:
            raise InvalidTransition(f"{refusal}. The task stays pending")
    approvers = (*task.approvers, p.principal)
    done = len(approvers) >= task.approvals_required
    status = ("modified" if modified is not None else "approved") if done else "pending"
    step = _step(p.principal, task.role, r.action, r.note, now, "passed")
    updated = save(replace(task, approvers=approvers, modified_action=modified, status=status,
                           steps=(*task.steps, step)))
    record("approval.recorded", {"by": p.principal, "role": task.role, "action": r.action, "note": r.note,
                                 "approvals_received": len(approvers), "approvals_required": task.approvals_required,
                                 "modified_action": modified})
    if done:
        data = {**ending(task, status), "approvers": list(approvers), "note": approval_note(updated)}
        if approved_action(updated) is not None:
            data["approved_action"] = updated.modified_action
        record("approval.resolved", data)
    finalize(uow, updated, decision, status if done else None, now)
    return Outcome(updated)


def _modified(base: dict, change: dict | None) -> dict:
    if not change:
        raise InvalidRequest("modified_action is required for MODIFY", (FieldViolation("modified_action", "required"),))
    if change.get("type") and change["type"] != base.get("type"):
        raise InvalidRequest("a modification cannot change the action type",
                             (FieldViolation("modified_action.type", "must stay the same"),))
    merged = dict(base)
    for k, v in change.items():
        if k in MODIFIABLE and v not in ("", None, {}):
            merged[k] = canonical_decimal(Decimal(v)) if k == "amount" else v  # the bound-action form
    return merged


def apply_timeout(uow: UnitOfWork, task: ApprovalRecord, now: datetime, random_bytes, finalize) -> ApprovalRecord:
    """The due time passed: deny, allow or escalate, as the route says."""
    decision = uow.decisions.get(task.tenant_id, task.environment, task.decision_id)

    def record(kind: str, data: dict) -> None:
        ledger.record(uow, task.tenant_id, task.environment, type=kind, subject=task.decision_id,
                      decision_id=task.decision_id, at=now, random_bytes=random_bytes,
                      data={"approval_id": task.approval_id, **data})

    if task.on_timeout == "escalate" and not task.escalated_on_timeout and task.escalate_to:
        step = _step("gavel", task.role, "timeout", "escalated on timeout", now, "not_checked")
        updated = replace(task, role=task.escalate_to, escalated_on_timeout=True,
                          due_at=now + timedelta(seconds=task.timeout_seconds), steps=(*task.steps, step),
                          updated_at=now, version=task.version + 1)
        if uow.approvals.update(updated, task.version):
            record("approval.escalated", {"from_role": task.role, "to_role": task.escalate_to, "by": "gavel",
                                          "note": "timeout"})
            finalize(uow, updated, decision, None, now)
        return updated
    status = "approved" if task.on_timeout == "allow" else "expired"
    step = _step("gavel", task.role, "timeout", f"on_timeout {task.on_timeout}", now, "not_checked")
    updated = replace(task, status=status, steps=(*task.steps, step), updated_at=now, version=task.version + 1)
    if uow.approvals.update(updated, task.version):
        record("approval.expired" if status == "expired" else "approval.resolved",
               {**ending(task, status), "by": "gavel", "on_timeout": task.on_timeout})
        finalize(uow, updated, decision, status, now)
    return updated


def decision_is_final(result: dict) -> bool:
    return result["state"] in ("approved", "denied", "expired", "executed", "execution_failed")


__all__ = ["DECISION_STATE", "FINAL", "DecisionRecord", "Outcome", "Resolution", "apply_timeout", "approval_note",
           "approved_action", "create", "decision_is_final", "ending", "modification_refusal", "resolve", "summary"]
