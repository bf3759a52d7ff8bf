"""The pure parts of issue 14's approval fixes, at their boundaries: which modified actions a task
may approve, what the decision says about the approved action and the notes, and which webhook
events each ledger event sends. The same behaviour is tested through a real server in
tests/e2e/test_approval_modify.py and tests/e2e/test_approval_webhooks.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gavel.app.approvals import approval_note, approved_action, modification_refusal
from gavel.app.errors import InvalidRequest
from gavel.app.model import WEBHOOK_EVENTS, ApprovalRecord, LedgerEvent
from gavel.app.webhooks import validate_events, webhook_events_of
from gavel.engine.decision import Route

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def task(role: str = "finance_manager", original_role: str = "finance_manager", approvals: int = 2,
         action: dict | None = None, modified: dict | None = None, steps: tuple = ()) -> ApprovalRecord:
    return ApprovalRecord(
        approval_id="apr_1", tenant_id="acme", environment="test", decision_id="dec_1", agent_id="bot",
        status="pending", role=role, original_role=original_role, approvals_required=approvals, approvers=(),
        due_at=NOW + timedelta(hours=1), timeout_seconds=3600, on_timeout="deny", escalate_to="",
        escalated_on_timeout=False, action=action or {"type": "refund", "amount": "600"}, modified_action=modified,
        reason_code="refund.medium", requester_id="", human_sponsor_id="", steps=steps, created_at=NOW,
        updated_at=NOW)


def route(role: str, approvals: int) -> Route:
    return Route(role=role, approvals=approvals, timeout=timedelta(hours=1), on_timeout="deny")


@pytest.mark.parametrize(("outcome", "the_route", "accepted"), [
    ("allow", None, True),
    ("deny", None, False),
    ("require_approval", None, False),  # an approval nobody is named to give: fail closed
    ("require_approval", route("finance_manager", 1), True),
    ("require_approval", route("finance_manager", 2), True),  # exactly the task's number
    ("require_approval", route("finance_manager", 3), False),  # one more
    ("require_approval", route("finance_director", 1), False),  # another role, even with fewer
    ("require_approval", route("Finance_Manager", 1), False),  # roles are exact names
])
def test_which_modified_actions_a_task_may_approve(outcome, the_route, accepted) -> None:
    refusal = modification_refusal(task(), outcome, "refund.x", the_route)
    assert (refusal is None) == accepted, refusal
    if not accepted:
        assert "refund.x" in refusal


def test_an_escalated_task_accepts_its_current_and_its_original_role() -> None:
    escalated = task(role="cfo", original_role="finance_manager", approvals=1)
    assert modification_refusal(escalated, "require_approval", "r", route("cfo", 1)) is None
    assert modification_refusal(escalated, "require_approval", "r", route("finance_manager", 1)) is None
    assert modification_refusal(escalated, "require_approval", "r", route("cfo", 2)) is not None
    assert modification_refusal(escalated, "require_approval", "r", route("board", 1)) is not None


def test_the_refusal_names_the_route_wanted_and_the_tasks() -> None:
    message = modification_refusal(task(approvals=1), "require_approval", "refund.large",
                                   route("finance_director", 2))
    assert "2 approvals from `finance_director` (refund.large)" in message
    assert "1 approval from `finance_manager`" in message


def test_approved_action_only_when_it_differs() -> None:
    asked = {"type": "refund", "amount": "600", "args": {"order": "o-1"}}
    assert approved_action(task(action=asked)) is None
    assert approved_action(task(action=asked, modified=dict(asked))) is None
    changed = {**asked, "amount": "250"}
    assert approved_action(task(action=asked, modified=changed)) == changed
    assert approved_action(task(action=asked, modified={**asked, "args": {"order": "o-2"}})) is not None


def step(action: str, note: str) -> dict:
    return {"principal": "p", "role": "r", "action": action, "note": note, "at": NOW.isoformat(), "sod_result": ""}


def test_the_note_is_what_approvers_wrote_in_order() -> None:
    steps = (step("sod_refused", "me again"), step("approve", "first"), step("escalate", "up"),
             step("approve", ""), step("modify", "second"), step("timeout", "on_timeout deny"), step("deny", "third"))
    assert approval_note(task(steps=steps)) == "first\nsecond\nthird"
    assert approval_note(task()) == ""


def event(type_: str, subject: str = "dec_1") -> LedgerEvent:
    return LedgerEvent("acme", "test", 7, "evt_1", type_, subject, "{}", b"", b"", NOW)


def kinds(type_: str, data: dict) -> list[str]:
    return [k for k, _ in webhook_events_of(event(type_), data)]


def test_every_decision_sends_one_final_word() -> None:
    assert kinds("decision.recorded", {"state": "approved", "outcome": "allow"}) == [
        "authorization.decided", "authorization.finalized"]
    assert kinds("decision.recorded", {"state": "denied"}) == ["authorization.decided", "authorization.finalized"]
    assert kinds("decision.recorded", {"state": "pending_approval"}) == ["authorization.decided"]
    for status in ("approved", "modified", "denied"):
        assert kinds("approval.resolved", {"status": status, "state": "x"}) == [
            "approval.resolved", "authorization.finalized"]
    assert kinds("approval.expired", {"status": "expired"}) == ["approval.resolved", "authorization.finalized"]
    assert kinds("approval.escalated", {"to_role": "cfo"}) == ["approval.resolved"]
    assert kinds("approval.recorded", {}) == ["approval.recorded"]
    assert kinds("sod.checked", {}) == [] and kinds("token.consumed", {}) == []


def test_the_payloads_of_the_new_events() -> None:
    (_, escalated), = webhook_events_of(event("approval.escalated"), {"to_role": "cfo", "by": "gavel"})
    assert escalated == {"to_role": "cfo", "by": "gavel", "status": "escalated"}
    ended = {"approval_id": "apr_1", "status": "modified", "state": "approved", "agent_id": "bot",
             "reason_code": "refund.medium", "approvers": ["mia"], "note": "partial",
             "approved_action": {"type": "refund", "amount": "250"}}
    (_, resolved), (_, final) = webhook_events_of(event("approval.resolved"), ended)
    assert resolved == ended
    assert final == {"approval_id": "apr_1", "approval_status": "modified", "state": "approved", "agent_id": "bot",
                     "reason_code": "refund.medium", "outcome": "require_approval", "note": "partial",
                     "approved_action": {"type": "refund", "amount": "250"}}
    recorded = {"state": "denied", "outcome": "deny", "reason_code": "r", "agent_id": "bot", "mode": "enforce",
                "enforced": True, "request": {"action": {}}, "facts": {}}
    _, (_, final) = webhook_events_of(event("decision.recorded"), recorded)
    assert final == {k: recorded[k] for k in ("state", "outcome", "reason_code", "agent_id", "mode", "enforced")}


def test_subscriptions_accept_exactly_what_is_emitted() -> None:
    assert "incident.opened" not in WEBHOOK_EVENTS
    assert {"approval.resolved", "authorization.finalized"} <= set(WEBHOOK_EVENTS)
    assert validate_events(["approval.resolved", "authorization.finalized"]) == (
        "approval.resolved", "authorization.finalized")
    with pytest.raises(InvalidRequest, match=r"unknown events: incident\.opened; known events: authorization"):
        validate_events(["incident.opened", "approval.resolved"])
