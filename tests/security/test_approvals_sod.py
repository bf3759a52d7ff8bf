"""Approval self-dealing, over a real server (gRPC ResolveApproval and the REST callback alike).

Nobody approves (APPROVE or MODIFY, which counts as an approval) their own request, the agent's
human sponsor (named in the request or in the registry) does not approve the agent's actions —
also with another key of the same person, a differently spelled identity, or after routing the
task to a role they also hold — and a key without the task's role (the owner's admin key, agent,
auditor, a platform key, another role) can neither approve nor deny, modify or escalate. Every
refusal leaves the task pending with no approval counted and no token issued; an independent
approver with the role then approves it.
"""

from __future__ import annotations

import aiohttp
import grpc
import pytest

from gavel.v1 import agent_pb2, approval_pb2, approval_pb2_grpc, common_pb2, decision_pb2
from tests.e2e.helpers import request
from tests.security.support import add_key, answer, bearer, md_for, start_rest

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
"""
APPROVE, DENY, MODIFY, ESCALATE = (approval_pb2.RESOLUTION_ACTION_APPROVE, approval_pb2.RESOLUTION_ACTION_DENY,
                                   approval_pb2.RESOLUTION_ACTION_MODIFY, approval_pb2.RESOLUTION_ACTION_ESCALATE)
NAMES = {APPROVE: "APPROVE", DENY: "DENY", MODIFY: "MODIFY", ESCALATE: "ESCALATE"}


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "spend.rules").write_text(RULES)
    return d


@pytest.fixture
async def people(harness):
    """Keys, by principal. rita requests, sam sponsors in the request, sue sponsors in the registry;
    each of them holds the task's role (and the escalation role), so only SoD stands in their way."""
    h = harness
    both = ("finance_manager", "cfo")
    for name, roles, principal in (
            ("rita", both, "rita@acme.example"), ("rita_again", ("finance_manager",), "rita@acme.example"),
            ("rita_shouting", both, " Rita@ACME.example "), ("sam", both, "sam@acme.example"),
            ("sam_titled", both, "SAM@acme.example"), ("sue", both, "sue@acme.example"),
            ("alice", ("finance_manager",), "alice@acme.example"), ("alice_laptop", ("finance_manager",),
                                                                    "alice@acme.example"),
            ("bob", ("finance_manager",), "bob@acme.example"), ("carol", ("cfo",), "carol@acme.example"),
            ("both_reserved", ("agent", "auditor"), "robot@acme.example"), ("admin_role", ("admin",), "owner2")):
        add_key(h, name, roles=roles, principal=principal)
    await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id="sponsored-bot", human_sponsor_id="sue@acme.example", daily_limit="100000"), metadata=h.md())
    return h


async def pending(h, amount: str = "600") -> decision_pb2.Decision:
    d = await h.decisions.Decide(request(amount=amount, agent="sponsored-bot", actors=decision_pb2.Actors(
        requester_id="rita@acme.example", human_sponsor_id="sam@acme.example")), metadata=h.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL
    return d


def grpc_resolve(h, who: str, approval_id: str, action: int, escalate_to: str = ""):
    extra = {"modified_action": common_pb2.Action(amount="550")} if action == MODIFY else {}
    return approval_pb2_grpc.ApprovalServiceStub(h.channel).ResolveApproval(approval_pb2.ResolveApprovalRequest(
        approval_id=approval_id, action=action, note="me", escalate_to=escalate_to, **extra),
        metadata=md_for(h.keys[who]))


async def rest_resolve(http, base, h, who, approval_id, action, key, escalate_to=""):
    body = {"action": NAMES[action], "note": "me"}
    if action == MODIFY:
        body["modified_action"] = {"amount": "550"}
    if escalate_to:
        body["escalate_to"] = escalate_to
    async with http.post(f"{base}/v1/approvals/{approval_id}/resolve", json=body,
                         headers=bearer(h.keys[who], key)) as r:
        return r.status, await r.json()


async def task_of(h, approval_id: str) -> approval_pb2.ApprovalTask:
    listed = await approval_pb2_grpc.ApprovalServiceStub(h.channel).ListApprovals(
        approval_pb2.ListApprovalsRequest(page_size=1000), metadata=h.md("auditor"))
    (task,) = [t for t in listed.approvals if t.approval_id == approval_id]
    return task


async def still_pending(h, d) -> None:
    task = await task_of(h, d.approval.approval_id)
    assert task.status == approval_pb2.APPROVAL_STATUS_PENDING and task.approvals_received == 0, task
    got = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                        metadata=h.md("agent"))
    assert got.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL and not got.decision_token


SELF_DEALERS = {
    "rita": "requested this action", "rita_again": "requested this action", "rita_shouting": "requested this action",
    "sam": "human sponsor", "sam_titled": "human sponsor", "sue": "human sponsor",
}


async def test_requesters_and_sponsors_cannot_approve_over_grpc_or_rest(people) -> None:
    h = people
    d = await pending(h)
    rest = await start_rest(h)
    problems = []
    try:
        async with aiohttp.ClientSession() as http:
            for n, (who, why) in enumerate(SELF_DEALERS.items()):
                for action in (APPROVE, MODIFY):
                    got = await answer(grpc_resolve(h, who, d.approval.approval_id, action))
                    if (got.code, got.reason) != (OK.PERMISSION_DENIED, "SOD_VIOLATION") or why not in got.message:
                        problems.append(f"gRPC {NAMES[action]} by {who}: {got.shown()}")
                    status, body = await rest_resolve(http, rest.base, h, who, d.approval.approval_id, action,
                                                      f"{who}-{action}-{n}")
                    if (status, body.get("error", {}).get("code")) != (403, "SOD_VIOLATION"):
                        problems.append(f"REST {NAMES[action]} by {who}: {status} {body}")
            await still_pending(h, d)
            # every refusal is in the task's steps and the evidence
            task = await task_of(h, d.approval.approval_id)
            assert [s.action for s in task.steps].count("sod_refused") == len(SELF_DEALERS) * 2 * 2
            # an independent approver with the role approves, and only then is there a token
            status, body = await rest_resolve(http, rest.base, h, "alice", d.approval.approval_id, APPROVE, "alice")
            assert status == 200 and body["status"] == "approved", body
    finally:
        await rest.server.stop()
    assert not problems, "\n".join(problems)
    got = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                        metadata=h.md("agent"))
    assert got.state == decision_pb2.DECISION_STATE_APPROVED and got.decision_token


async def test_escalating_to_a_role_one_also_holds_does_not_launder_self_approval(people) -> None:
    """The requester may route the task on (ESCALATE) or turn it down (DENY) — neither approves
    anything — but holding the escalation role does not let them approve it there either."""
    h = people
    d = await pending(h)
    task = await (grpc_resolve(h, "rita", d.approval.approval_id, ESCALATE))
    assert task.role == "cfo" and task.status == approval_pb2.APPROVAL_STATUS_PENDING
    for who in ("rita", "sam", "sue"):
        for action in (APPROVE, MODIFY):
            got = await answer(grpc_resolve(h, who, d.approval.approval_id, action))
            assert (got.code, got.reason) == (OK.PERMISSION_DENIED, "SOD_VIOLATION"), (who, got)
    got = await answer(grpc_resolve(h, "alice", d.approval.approval_id, APPROVE))  # no longer her role
    assert (got.code, got.reason) == (OK.PERMISSION_DENIED, "FORBIDDEN"), got
    await still_pending(h, d)
    approved = await grpc_resolve(h, "carol", d.approval.approval_id, APPROVE)
    assert approved.status == approval_pb2.APPROVAL_STATUS_APPROVED and list(approved.approvers) == [
        "carol@acme.example"]


async def test_two_approvals_need_two_people_whatever_keys_they_use(people) -> None:
    h = people
    d = await pending(h, amount="2000")  # approvals: 2
    first = await grpc_resolve(h, "alice", d.approval.approval_id, APPROVE)
    assert first.approvals_received == 1 and first.status == approval_pb2.APPROVAL_STATUS_PENDING
    for who in ("alice", "alice_laptop"):
        got = await answer(grpc_resolve(h, who, d.approval.approval_id, APPROVE))
        assert (got.code, got.reason) == (OK.PERMISSION_DENIED, "SOD_VIOLATION") and "already approved" in got.message
    got = await answer(grpc_resolve(h, "rita_again", d.approval.approval_id, MODIFY))
    assert (got.code, got.reason) == (OK.PERMISSION_DENIED, "SOD_VIOLATION")
    assert (await task_of(h, d.approval.approval_id)).approvals_received == 1
    done = await grpc_resolve(h, "bob", d.approval.approval_id, APPROVE)
    assert done.status == approval_pb2.APPROVAL_STATUS_APPROVED and done.approvals_received == 2


ROLELESS = ("admin_test", "admin_role", "agent", "auditor", "both_reserved", "carol", "platform")


async def test_keys_without_the_task_role_can_do_nothing_to_it(people) -> None:
    """The owner's admin key, agent, auditor and platform keys, and a key holding another role:
    every action over gRPC is PERMISSION_DENIED / FORBIDDEN, over REST 403 (404 for a platform key,
    which belongs to no tenant) — and nothing changes."""
    h = people
    d = await pending(h)
    rest = await start_rest(h)
    problems = []
    try:
        async with aiohttp.ClientSession() as http:
            for who in ROLELESS:
                for action in (APPROVE, DENY, MODIFY, ESCALATE):
                    target = "finance_manager" if action == ESCALATE else ""
                    got = await answer(grpc_resolve(h, who, d.approval.approval_id, action, target))
                    if (got.code, got.reason) != (OK.PERMISSION_DENIED, "FORBIDDEN"):
                        problems.append(f"gRPC {NAMES[action]} by {who}: {got.shown()}")
                    status, body = await rest_resolve(http, rest.base, h, who, d.approval.approval_id, action,
                                                      f"{who}-{action}", target)
                    expected = (404, "NOT_FOUND") if who == "platform" else (403, "FORBIDDEN")
                    if (status, body.get("error", {}).get("code")) != expected:
                        problems.append(f"REST {NAMES[action]} by {who}: {status} {body}")
    finally:
        await rest.server.stop()
    assert not problems, "\n".join(problems)
    await still_pending(h, d)
    task = await task_of(h, d.approval.approval_id)
    assert task.role == "finance_manager" and not task.steps


async def test_a_rest_modify_is_checked_like_grpc(people) -> None:
    """The REST callback validates a modified action as ResolveApproval does: money is a decimal
    string ≥ 0 (not a JSON number, not negative, not NaN); a refused body changes nothing."""
    h = people
    d = await pending(h)
    rest = await start_rest(h)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{rest.base}/v1/approvals/{d.approval.approval_id}/resolve"
            for n, modified in enumerate(({"amount": "-5"}, {"amount": "abc"}, {"amount": 120.5}, {"amount": "NaN"},
                                          {"amount": "1e3"}, {"currency": "usd"}, {"args": "x"}, {"args": [1]},
                                          {"entity": 7}, {"bogus": "1"})):
                async with http.post(url, json={"action": "MODIFY", "modified_action": modified},
                                     headers=bearer(h.keys["alice"], f"m{n}")) as r:
                    body = await r.json()
                    assert r.status == 400 and body["error"]["code"] == "INVALID_REQUEST", (modified, r.status, body)
            for n, raw in enumerate(('{"action": "MODIFY", "modified_action": {"amount": NaN}}',
                                     '{"action": "APPROVE", "action": "DENY"}')):
                async with http.post(url, data=raw, headers={**bearer(h.keys["alice"], f"raw{n}"),
                                                              "Content-Type": "application/json"}) as r:
                    assert r.status == 400, (raw, await r.text())
            await still_pending(h, d)
            async with http.post(url, json={"action": "MODIFY", "modified_action": {"amount": "550.00",
                                                                                    "args": {"qty": 1.5}}},
                                 headers=bearer(h.keys["alice"], "ok")) as r:
                body = await r.json()
                assert r.status == 200 and body["status"] == "modified", body
    finally:
        await rest.server.stop()
