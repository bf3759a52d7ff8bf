"""MODIFY over a real server: a modified action is accepted only when the rules would allow it or
route it no higher than the task (the same role, no more approvals); otherwise the MODIFY is
refused and the task, the decision and the tokens stay as they were (issue 14). After an accepted
MODIFY, GetDecision and WaitDecision carry the approved action and the approvers' note."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gavel.adapters.db import tables
from gavel.v1 import approval_pb2, common_pb2, decision_pb2
from tests.e2e.helpers import error_info, request, token_parts
from tests.e2e.test_approvals import add_keys, resolve, stub, wait_stream

OK = grpc.StatusCode
MODIFY = approval_pb2.RESOLUTION_ACTION_MODIFY
APPROVE = approval_pb2.RESOLUTION_ACTION_APPROVE
RULES = """package refunds
scope action.type == "refund"
rule small allow "refund.small" when action.amount <= 100
rule medium require_approval "refund.medium"
  when { action.amount > 100
    action.amount <= 5000 }
  route { role: "finance_manager", approvals: 1, timeout: 1h, on_timeout: deny, escalate_to: "finance_director" }
rule doubled require_approval "refund.doubled"
  when { action.amount > 5000
    action.amount <= 10000 }
  route { role: "finance_manager", approvals: 2, timeout: 1h, on_timeout: deny }
rule large require_approval "refund.large"
  when { action.amount > 10000
    action.amount <= 100000 }
  route { role: "finance_director", approvals: 2, timeout: 1h, on_timeout: deny }
rule huge deny "refund.huge" when action.amount > 100000
"""


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "refunds.rules").write_text(RULES)
    return d


@pytest.fixture
def staff(harness):
    add_keys(harness, ("manager", ["finance_manager"], "mia"), ("manager2", ["finance_manager"], "max"),
             ("director", ["finance_director"], "dora"), ("director2", ["finance_director"], "dan"))
    return harness


def refund(amount: str) -> decision_pb2.DecideRequest:
    return request(type_="refund", amount=amount)


async def decision_now(h, decision_id: str) -> decision_pb2.Decision:
    return await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=decision_id),
                                         metadata=h.md("agent"))


def tokens_of(h, decision_id: str) -> list:
    """Every token row issued for the decision, read from the store itself."""
    query = tables.tokens.select().where(tables.tokens.c.decision_id == decision_id)
    return h.runtime.store.run_sync(lambda uow: list(uow.tokens._connection.execute(query)))


async def modify_error(call) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        assert err.code() == OK.FAILED_PRECONDITION, (err.code(), err.details())
        assert error_info(err)[0] == "INVALID_TRANSITION"
        return err.details()
    raise AssertionError("the MODIFY was accepted")


async def test_a_modification_the_rules_route_to_two_directors_is_refused(staff) -> None:
    h = staff
    d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
    assert d.approval.role == "finance_manager" and d.approval.approvals_required == 1
    message = await modify_error(resolve(h, "manager", d.approval.approval_id, MODIFY, note="make it whole",
                                         modified_action=common_pb2.Action(amount="99000")))
    assert "`finance_director`" in message and "2 approvals" in message and "refund.large" in message
    # nothing changed: the task is pending with no approval, the decision pending with no token
    (task,) = (await stub(h).ListApprovals(approval_pb2.ListApprovalsRequest(), metadata=h.md("manager"))).approvals
    assert task.status == approval_pb2.APPROVAL_STATUS_PENDING and task.approvals_received == 0
    assert not task.HasField("modified_action") and [s.action for s in task.steps] == []
    now = await decision_now(h, d.decision_id)
    assert now.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL and now.decision_token == ""
    assert not now.HasField("approved_action")
    assert tokens_of(h, d.decision_id) == []
    # the request as asked can still be approved, and its token is for 600, never 99,000
    t = await resolve(h, "manager", d.approval.approval_id, APPROVE)
    assert t.status == approval_pb2.APPROVAL_STATUS_APPROVED
    final = await decision_now(h, d.decision_id)
    assert token_parts(final.decision_token)[1]["amount"] == "600" and not final.HasField("approved_action")
    consumed = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=final.decision_token),
                                              metadata=h.md("agent"))
    assert consumed.amount == "600"


async def test_the_same_role_with_more_approvals_is_refused(staff) -> None:
    h = staff
    d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
    message = await modify_error(resolve(h, "manager", d.approval.approval_id, MODIFY,
                                         modified_action=common_pb2.Action(amount="7000")))
    assert "2 approvals" in message and "`finance_manager`" in message and "1 approval" in message
    # a task that collects two approvals: a modification routed to another role is refused too
    d = await h.decisions.Decide(refund("6000"), metadata=h.md("agent"))
    await modify_error(resolve(h, "manager", d.approval.approval_id, MODIFY,
                               modified_action=common_pb2.Action(amount="20000")))
    t = await resolve(h, "manager", d.approval.approval_id, MODIFY, modified_action=common_pb2.Action(amount="800"))
    assert t.status == approval_pb2.APPROVAL_STATUS_PENDING and t.modified_action.amount == "800"
    t = await resolve(h, "manager2", d.approval.approval_id, APPROVE)
    assert t.status == approval_pb2.APPROVAL_STATUS_MODIFIED
    assert token_parts((await decision_now(h, d.decision_id)).decision_token)[1]["amount"] == "800"


async def test_a_modification_the_rules_deny_stays_refused(staff) -> None:
    h = staff
    d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
    message = await modify_error(resolve(h, "manager", d.approval.approval_id, MODIFY,
                                         modified_action=common_pb2.Action(amount="200000")))
    assert "deny" in message and "refund.huge" in message
    assert tokens_of(h, d.decision_id) == []


async def test_modifications_the_rules_allow_or_route_no_higher_are_accepted(staff) -> None:
    h = staff
    d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
    agent_side = asyncio.create_task(wait_stream(h, d.decision_id))
    t = await resolve(h, "manager", d.approval.approval_id, MODIFY, note="partial refund: item kept",
                      modified_action=common_pb2.Action(amount="50"))  # the rules would allow it
    assert t.status == approval_pb2.APPROVAL_STATUS_MODIFIED
    seen = await asyncio.wait_for(agent_side, 10)
    final = seen[-1]
    assert final.state == decision_pb2.DECISION_STATE_APPROVED
    assert final.approved_action.amount == "50" and final.approved_action.type == "refund"
    assert final.approved_action.currency == "USD" and final.approval_note == "partial refund: item kept"
    assert token_parts(final.decision_token)[1]["amount"] == "50"
    got = await decision_now(h, d.decision_id)
    assert got.approved_action == final.approved_action and got.approval_note == final.approval_note
    # routed to the same role with no more approvals
    d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
    t = await resolve(h, "manager", d.approval.approval_id, MODIFY, modified_action=common_pb2.Action(amount="4000"))
    assert t.status == approval_pb2.APPROVAL_STATUS_MODIFIED
    got = await decision_now(h, d.decision_id)
    assert got.approved_action.amount == "4000" and got.approval_note == ""


async def test_an_escalated_task_keeps_its_routes_bounds(staff) -> None:
    h = staff
    d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
    t = await resolve(h, "manager", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_ESCALATE)
    assert t.role == "finance_director"
    # the director holds the task, but the rules want two of them for 99,000: this task collects one
    await modify_error(resolve(h, "director", d.approval.approval_id, MODIFY,
                               modified_action=common_pb2.Action(amount="99000")))
    t = await resolve(h, "director", d.approval.approval_id, MODIFY, note="capped",
                      modified_action=common_pb2.Action(amount="3000"))  # the task's own route
    assert t.status == approval_pb2.APPROVAL_STATUS_MODIFIED
    got = await decision_now(h, d.decision_id)
    assert got.approved_action.amount == "3000" and got.approval_note == "capped"


async def test_approved_action_only_when_it_differs_and_notes_in_order(staff) -> None:
    h = staff
    d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
    await resolve(h, "manager", d.approval.approval_id, MODIFY, note="same",
                  modified_action=common_pb2.Action(amount="600.00"))
    got = await decision_now(h, d.decision_id)
    assert got.state == decision_pb2.DECISION_STATE_APPROVED and not got.HasField("approved_action")
    assert got.approval_note == "same"
    # two approvers: both notes, in order; a denial carries its note and no action
    d = await h.decisions.Decide(refund("6000"), metadata=h.md("agent"))
    await resolve(h, "manager", d.approval.approval_id, APPROVE, note="checked the order")
    pending = await decision_now(h, d.decision_id)
    assert pending.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL
    assert pending.approval_note == "checked the order" and not pending.HasField("approved_action")
    await resolve(h, "manager2", d.approval.approval_id, APPROVE, note="customer verified")
    got = await decision_now(h, d.decision_id)
    assert got.approval_note == "checked the order\ncustomer verified"
    d = await h.decisions.Decide(refund("700"), metadata=h.md("agent"))
    await resolve(h, "manager", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_DENY, note="duplicate claim")
    final = (await wait_stream(h, d.decision_id))[-1]
    assert final.state == decision_pb2.DECISION_STATE_DENIED and final.approval_note == "duplicate claim"
    assert not final.HasField("approved_action") and final.decision_token == ""


async def test_the_rest_callback_refuses_the_same_modification(staff) -> None:
    import aiohttp

    from gavel.adapters.rest.server import RestServer

    h = staff
    server = RestServer(h.runtime, h.runtime.egress, None)
    port = await server.start("127.0.0.1:0")
    try:
        d = await h.decisions.Decide(refund("600"), metadata=h.md("agent"))
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/v1/approvals/{d.approval.approval_id}/resolve",
                json={"action": "MODIFY", "modified_action": {"amount": "99000"}},
                headers={"Authorization": f"Bearer {h.keys['manager']}", "Idempotency-Key": "m1"}) as r:
            body = await r.json()
        assert r.status == 409 and body["error"]["code"] == "INVALID_TRANSITION"
        assert "finance_director" in body["error"]["message"]
        assert tokens_of(h, d.decision_id) == []
    finally:
        await server.stop()

