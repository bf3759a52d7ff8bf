"""Human approvals over a real server: reviewer and agent streams, every transition, SoD,
concurrency, cursors, timeouts (also across a restart), and stream hygiene."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest

from gavel.app import admin
from gavel.v1 import approval_pb2, approval_pb2_grpc, common_pb2, decision_pb2
from tests.e2e.helpers import expect_error, request, token_parts

OK = grpc.StatusCode
RULES = """package spend
scope action.type == "payment"
rule small allow "payment.small" when action.amount <= 100
rule medium require_approval "payment.medium"
  when { action.amount > 100
    action.amount <= 1000 }
  route { role: "finance_manager", approvals: 1, timeout: 1h, on_timeout: deny, escalate_to: "cfo" }
rule large require_approval "payment.large"
  when { action.amount > 1000
    action.amount <= 5000 }
  route { role: "finance_manager", approvals: 2, timeout: 1h, on_timeout: deny }
rule huge deny "payment.huge" when action.amount > 5000
rule quick require_approval "payment.quick"
  when action.subtype == "expiring"
  route { role: "finance_manager", approvals: 1, timeout: 1s, on_timeout: deny }
rule lenient require_approval "payment.lenient"
  when action.subtype == "lenient"
  route { role: "finance_manager", approvals: 1, timeout: 1s, on_timeout: allow }
rule bumped require_approval "payment.bumped"
  when action.subtype == "bumped"
  route { role: "finance_manager", approvals: 1, timeout: 1s, on_timeout: escalate, escalate_to: "cfo" }
"""


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "spend.rules").write_text(RULES)
    return d


@pytest.fixture
def settings_overrides() -> dict:
    return {"sod_role_conflicts": "ap_clerk:finance_manager"}


def add_keys(h, *specs: tuple[str, list[str], str]) -> None:
    import os

    now = datetime.now(UTC)

    def unit(uow):
        for name, roles, principal in specs:
            h.keys[name] = admin.create_key(uow, None, tenant="acme", environment="test", roles=roles,
                                            principal=principal, description="", now=now,
                                            random_bytes=os.urandom)["secret"]

    h.runtime.store.run_sync(unit)


@pytest.fixture
def approvers(harness):
    add_keys(harness, ("alice", ["finance_manager"], "alice"), ("bob", ["finance_manager"], "bob"),
             ("carol", ["cfo"], "carol"), ("clerk", ["finance_manager", "ap_clerk"], "dave"))
    return harness


def stub(h) -> approval_pb2_grpc.ApprovalServiceStub:
    return approval_pb2_grpc.ApprovalServiceStub(h.channel)


async def resolve(h, who: str, approval_id: str, action: int, **kw):
    return await stub(h).ResolveApproval(approval_pb2.ResolveApprovalRequest(
        approval_id=approval_id, action=action, **kw), metadata=h.md(who))


async def wait_stream(h, decision_id: str) -> list:
    out = []
    async for d in h.decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id=decision_id),
                                            metadata=h.md("agent")):
        out.append(d)
    return out


async def test_reviewer_and_agent_streams_through_an_approval(approvers) -> None:
    h = approvers
    watch = stub(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(), metadata=h.md("alice"))
    d = await h.decisions.Decide(request(amount="500", actors=decision_pb2.Actors(requester_id="rita")),
                                 metadata=h.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL and d.approval.approval_id.startswith("apr_")
    assert d.decision_token == ""
    agent_side = asyncio.create_task(wait_stream(h, d.decision_id))
    first = await asyncio.wait_for(watch.read(), 5)
    assert first.approval.approval_id == d.approval.approval_id and first.approval.role == "finance_manager"
    assert first.approval.status == approval_pb2.APPROVAL_STATUS_PENDING
    task = await resolve(h, "alice", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_APPROVE, note="ok")
    assert task.status == approval_pb2.APPROVAL_STATUS_APPROVED and list(task.approvers) == ["alice"]
    seen = await asyncio.wait_for(agent_side, 10)
    assert seen[0].state == decision_pb2.DECISION_STATE_PENDING_APPROVAL
    final = seen[-1]
    assert final.state == decision_pb2.DECISION_STATE_APPROVED and final.decision_token
    assert final.approval.approvals_received == 1
    assert token_parts(final.decision_token)[1]["decision_id"] == d.decision_id
    update = await asyncio.wait_for(watch.read(), 5)
    while update.approval.status == approval_pb2.APPROVAL_STATUS_PENDING:
        update = await asyncio.wait_for(watch.read(), 5)
    assert update.approval.status == approval_pb2.APPROVAL_STATUS_APPROVED and update.cursor.isdigit()
    watch.cancel()
    await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=final.decision_token),
                                   metadata=h.md("agent"))
    await expect_error(resolve(h, "bob", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_DENY),
                       OK.FAILED_PRECONDITION, "INVALID_TRANSITION")


async def test_two_distinct_approvers_are_needed_and_sod_is_enforced(approvers) -> None:
    h = approvers
    d = await h.decisions.Decide(request(amount="2000", actors=decision_pb2.Actors(
        requester_id="bob", human_sponsor_id="carol")), metadata=h.md("agent"))
    aid = d.approval.approval_id
    await expect_error(resolve(h, "bob", aid, approval_pb2.RESOLUTION_ACTION_APPROVE), OK.PERMISSION_DENIED,
                       "SOD_VIOLATION")  # the requester
    await expect_error(resolve(h, "clerk", aid, approval_pb2.RESOLUTION_ACTION_APPROVE), OK.PERMISSION_DENIED,
                       "SOD_VIOLATION")  # a conflicting role
    t = await resolve(h, "alice", aid, approval_pb2.RESOLUTION_ACTION_APPROVE)
    assert t.status == approval_pb2.APPROVAL_STATUS_PENDING and t.approvals_received == 1
    await expect_error(resolve(h, "alice", aid, approval_pb2.RESOLUTION_ACTION_APPROVE), OK.PERMISSION_DENIED,
                       "SOD_VIOLATION")  # the same person twice
    await expect_error(resolve(h, "admin_test", aid, approval_pb2.RESOLUTION_ACTION_APPROVE), OK.PERMISSION_DENIED,
                       "FORBIDDEN")  # admin does not imply the role
    await expect_error(resolve(h, "carol", aid, approval_pb2.RESOLUTION_ACTION_APPROVE), OK.PERMISSION_DENIED,
                       "FORBIDDEN")  # wrong role
    got = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                        metadata=h.md("agent"))
    assert got.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL and got.approval.approvals_received == 1
    # every SoD outcome is recorded in the task and the evidence
    listed = await stub(h).ListApprovals(approval_pb2.ListApprovalsRequest(), metadata=h.md("auditor"))
    steps = [s.action for s in listed.approvals[0].steps]
    assert steps.count("sod_refused") == 3 and "approve" in steps


async def test_deny_modify_and_escalate(approvers) -> None:
    h = approvers
    d = await h.decisions.Decide(request(amount="600"), metadata=h.md("agent"))
    t = await resolve(h, "alice", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_DENY, note="no")
    assert t.status == approval_pb2.APPROVAL_STATUS_DENIED
    (final,) = [x for x in await wait_stream(h, d.decision_id)][-1:]
    assert final.state == decision_pb2.DECISION_STATE_DENIED and final.decision_token == ""

    d = await h.decisions.Decide(request(amount="700"), metadata=h.md("agent"))
    await expect_error(resolve(h, "alice", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_MODIFY,
                               modified_action=common_pb2.Action(amount="9000")),
                       OK.FAILED_PRECONDITION, "INVALID_TRANSITION")  # the rules deny the change
    t = await resolve(h, "alice", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_MODIFY,
                      modified_action=common_pb2.Action(amount="250.00"))
    assert t.status == approval_pb2.APPROVAL_STATUS_MODIFIED and t.modified_action.amount == "250"
    final = (await wait_stream(h, d.decision_id))[-1]
    claims = token_parts(final.decision_token)[1]
    assert claims["amount"] == "250" and final.state == decision_pb2.DECISION_STATE_APPROVED
    r = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=final.decision_token,
                                                                        args_hash=claims["args_hash"]),
                                       metadata=h.md("agent"))
    assert r.valid and r.amount == "250"

    d = await h.decisions.Decide(request(amount="800"), metadata=h.md("agent"))
    cfo_watch = stub(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(), metadata=h.md("carol"))
    t = await resolve(h, "alice", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_ESCALATE, note="too big")
    assert t.status == approval_pb2.APPROVAL_STATUS_PENDING and t.role == "cfo"
    seen = await asyncio.wait_for(cfo_watch.read(), 5)
    assert seen.approval.approval_id == d.approval.approval_id and seen.approval.role == "cfo"
    cfo_watch.cancel()
    await expect_error(resolve(h, "bob", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_APPROVE),
                       OK.PERMISSION_DENIED, "FORBIDDEN")
    t = await resolve(h, "carol", d.approval.approval_id, approval_pb2.RESOLUTION_ACTION_APPROVE)
    assert t.status == approval_pb2.APPROVAL_STATUS_APPROVED


async def test_fifty_concurrent_resolves_exactly_one_wins(approvers) -> None:
    h = approvers
    d = await h.decisions.Decide(request(amount="300"), metadata=h.md("agent"))
    calls = [resolve(h, "alice" if i % 2 else "bob", d.approval.approval_id,
                     approval_pb2.RESOLUTION_ACTION_APPROVE if i % 3 else approval_pb2.RESOLUTION_ACTION_DENY)
             for i in range(50)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    wins = [r for r in results if not isinstance(r, Exception)]
    assert len(wins) == 1
    assert all(isinstance(r, grpc.aio.AioRpcError) and r.code() == OK.FAILED_PRECONDITION
               for r in results if r not in wins)


async def test_watch_resumes_from_a_cursor_without_gaps_or_repeats(approvers) -> None:
    h = approvers
    first = await h.decisions.Decide(request(amount="150"), metadata=h.md("agent"))
    watch = stub(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(role="finance_manager"),
                                   metadata=h.md("alice"))
    snap = await asyncio.wait_for(watch.read(), 5)
    assert snap.snapshot and snap.approval.approval_id == first.approval.approval_id
    second = await h.decisions.Decide(request(amount="160"), metadata=h.md("agent"))
    live = await asyncio.wait_for(watch.read(), 5)
    assert not live.snapshot and live.approval.approval_id == second.approval.approval_id
    cursor = live.cursor
    watch.cancel()
    # while disconnected: one more task and a resolution
    third = await h.decisions.Decide(request(amount="170"), metadata=h.md("agent"))
    await resolve(h, "bob", first.approval.approval_id, approval_pb2.RESOLUTION_ACTION_APPROVE)
    again = stub(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(cursor=cursor), metadata=h.md("alice"))
    a = await asyncio.wait_for(again.read(), 5)
    b = await asyncio.wait_for(again.read(), 5)
    again.cancel()
    assert [a.approval.approval_id, b.approval.approval_id] == [third.approval.approval_id,
                                                                first.approval.approval_id]
    assert b.approval.status == approval_pb2.APPROVAL_STATUS_APPROVED and not a.snapshot
    assert int(b.cursor) > int(a.cursor) > int(cursor)
    await expect_error(stub(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(role="cfo"),
                                              metadata=h.md("alice")).read(), OK.PERMISSION_DENIED, "FORBIDDEN")


async def test_timeouts_deny_allow_and_escalate(approvers) -> None:
    h = approvers
    expiring = await h.decisions.Decide(request(amount="10", subtype="expiring"), metadata=h.md("agent"))
    lenient = await h.decisions.Decide(request(amount="10", subtype="lenient"), metadata=h.md("agent"))
    bumped = await h.decisions.Decide(request(amount="10", subtype="bumped"), metadata=h.md("agent"))
    ends = await asyncio.wait_for(asyncio.gather(wait_stream(h, expiring.decision_id),
                                                 wait_stream(h, lenient.decision_id)), 10)
    assert ends[0][-1].state == decision_pb2.DECISION_STATE_EXPIRED and not ends[0][-1].decision_token
    assert ends[1][-1].state == decision_pb2.DECISION_STATE_APPROVED and ends[1][-1].decision_token
    await expect_error(resolve(h, "alice", expiring.approval.approval_id, approval_pb2.RESOLUTION_ACTION_APPROVE),
                       OK.FAILED_PRECONDITION, "INVALID_TRANSITION")
    for _ in range(40):
        page = await stub(h).ListApprovals(approval_pb2.ListApprovalsRequest(role="cfo"), metadata=h.md("carol"))
        if page.approvals:
            break
        await asyncio.sleep(0.1)
    (task,) = page.approvals
    assert task.decision_id == bumped.decision_id and task.status == approval_pb2.APPROVAL_STATUS_PENDING


@pytest.fixture
def short_timeouts(rules_dir):
    return rules_dir


async def test_overdue_tasks_are_resolved_after_a_restart(tmp_path, rules_dir) -> None:
    from gavel.adapters.grpc.server import GrpcServer
    from gavel.bootstrap import build
    from gavel.config import Settings
    from tests.e2e.conftest import seed_keys

    settings = Settings(data_dir=tmp_path / "data", rules=rules_dir, grpc_addr="127.0.0.1:0")
    runtime = build(settings)
    keys = seed_keys(runtime)
    principal = await runtime.app.authenticate(keys["agent"])
    from gavel.app.requests import DecideInput

    pending = await runtime.app.decide(principal, DecideInput(
        action={"type": "payment", "amount": "10", "subtype": "expiring"}, args=None, agent_id="bot"))
    await runtime.close()  # the server is down while the task falls due
    await asyncio.sleep(1.3)
    runtime = build(settings)
    server = GrpcServer(runtime)
    await server.start("127.0.0.1:0")
    try:
        for _ in range(40):
            result = await runtime.app.get_decision(principal, pending["decision_id"])
            if result["state"] == "expired":
                break
            await asyncio.sleep(0.1)
        assert result["state"] == "expired"
    finally:
        await server.stop(0)


async def test_streams_do_not_leak_and_a_stuck_watcher_blocks_nobody(approvers) -> None:
    h = approvers
    for _ in range(60):
        w = stub(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(), metadata=h.md("alice"))
        d = h.decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id="dec_nope"), metadata=h.md("agent"))
        w.cancel()
        d.cancel()
    stuck = [stub(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(), metadata=h.md("alice")) for _ in range(20)]
    started = asyncio.get_running_loop().time()
    for _ in range(30):
        await h.decisions.Decide(request(amount="150"), metadata=h.md("agent"))
    assert asyncio.get_running_loop().time() - started < 10
    for s in stuck:
        s.cancel()
    await asyncio.sleep(1.5)
    assert len(h.runtime.app.events._waiters) == 0
    await expect_error(h.decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id="dec_nope"),
                                                metadata=h.md("agent")).read(), OK.NOT_FOUND, "NOT_FOUND")
