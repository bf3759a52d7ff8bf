"""One verdict for every path (issue 14): Decide, ExplainDecision, ReplayBundle and the approval
finaliser judge a request with the same function (`gavel.app.verdict`), over a real server."""

from __future__ import annotations

import itertools

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from gavel.bundles import make_bundle, write_archive
from gavel.v1 import (
    agent_pb2,
    approval_pb2,
    approval_pb2_grpc,
    common_pb2,
    decision_pb2,
    evidence_pb2,
    policy_pb2,
    policy_pb2_grpc,
)
from tests.e2e.conftest import RULES
from tests.e2e.helpers import expect_error, request, set_minimum_mode
from tests.security.support import add_key, answer, md_for

OK = grpc.StatusCode
DRY_RUN = "dry run: nothing was recorded"
MODES = (common_pb2.MODE_UNSPECIFIED, common_pb2.MODE_MONITOR, common_pb2.MODE_WARN, common_pb2.MODE_ENFORCE,
         common_pb2.MODE_STRICT)
AGENTS = ("ghost", "active-bot", "paused-bot", "locked-bot")  # unregistered, and registered in each status
HASHES = ("", "sha256:" + "c" * 64)
ACTIONS = (dict(amount="100"), dict(amount="600"), dict(currency="JPY"), dict(type_="refund"))


def policies(h) -> policy_pb2_grpc.PolicyServiceStub:
    return policy_pb2_grpc.PolicyServiceStub(h.channel)


def approvals(h) -> approval_pb2_grpc.ApprovalServiceStub:
    return approval_pb2_grpc.ApprovalServiceStub(h.channel)


async def register(h, agent_id: str, status: int = agent_pb2.AGENT_STATUS_ACTIVE, **kw) -> None:
    await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id=agent_id, daily_limit="100000000", allowed_actions=["payment"], **kw), metadata=h.md())
    if status != agent_pb2.AGENT_STATUS_ACTIVE:
        await set_status(h, agent_id, status)


async def set_status(h, agent_id: str, status: int) -> None:
    await h.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
        agent_id=agent_id, status=status, update_mask=field_mask_pb2.FieldMask(paths=["status"])), metadata=h.md())


def verdict_of(answer_) -> tuple:
    """What must agree: the error, or the verdict and what it was judged in."""
    if not answer_.ok:
        return ("error", answer_.code, answer_.reason)
    d = answer_.response
    return (d.outcome, d.reason_code, d.state, d.mode, d.enforced, [w for w in d.warnings if w != DRY_RUN],
            d.message, d.explain.summary, d.policy.rule, d.risk.score)


@pytest.mark.parametrize("minimum", [common_pb2.MODE_MONITOR, common_pb2.MODE_ENFORCE])
async def test_explain_answers_what_decide_answers(harness, minimum) -> None:
    """For every (requested mode × registered × agent status × input_hash × key bound or not × rules'
    outcome), ExplainDecision's outcome, reason, state and mode equal Decide's — or both refuse the
    same way (a paused or locked agent). Explain used to skip the paused/locked refusal and STRICT's
    denials, and re-derived mode and state on its own."""
    h = harness
    await set_minimum_mode(h, minimum)
    await register(h, "active-bot")
    await register(h, "paused-bot", agent_pb2.AGENT_STATUS_PAUSED)
    await register(h, "locked-bot", agent_pb2.AGENT_STATUS_LOCKED)
    keys = {"bound": md_for(add_key(h, "bound-admin", roles=("admin", "agent"), agents=AGENTS)),
            "unbound": h.md("admin_test")}
    seen, decided = set(), 0
    for mode, agent, input_hash, key, action in itertools.product(MODES, AGENTS, HASHES, keys, ACTIONS):
        req = request(agent=agent, mode=mode, input_hash=input_hash, **action)
        # Explain first: the Decide that follows may reserve budget, which the next Explain would see
        explained = await answer(policies(h).ExplainDecision(policy_pb2.ExplainDecisionRequest(request=req),
                                                             metadata=keys[key]))
        decision = await answer(h.decisions.Decide(req, metadata=keys[key]))
        case = (common_pb2.Mode.Name(mode), agent, bool(input_hash), key, action)
        assert verdict_of(explained) == verdict_of(decision), case
        if decision.ok:
            decided += 1
            d = decision.response
            assert bool(d.decision_token) == (d.state == decision_pb2.DECISION_STATE_APPROVED), case
            seen.add((d.reason_code, d.state))
        if explained.ok:
            assert DRY_RUN in explained.response.warnings and not explained.response.decision_token
    # the grid reached every kind of verdict, so the equality above was tested on each
    reasons = {reason for reason, _ in seen}
    assert {"strict.agent_unregistered", "strict.action_not_allowed", "strict.input_unverified",
            "strict.agent_unbound", "payment.small", "payment.needs_approval", "currency.unsupported"} <= reasons
    states = {state for _, state in seen}
    assert decision_pb2.DECISION_STATE_PENDING_APPROVAL in states and decision_pb2.DECISION_STATE_DENIED in states
    assert decided == len(MODES) * 2 * len(HASHES) * len(keys) * len(ACTIONS)  # ghost and active-bot

    # ReplayBundle judges each recorded decision again with the same verdict: the same rules change
    # nothing, STRICT's denials included (they used to be skipped, not evaluated)
    archive = write_archive(make_bundle({"payments.rules": RULES}, version="same", author="tests"))
    results = [r async for r in policies(h).ReplayBundle(policy_pb2.ReplayBundleRequest(
        bundle=archive, since=duration_pb2.Duration(seconds=3600)), metadata=h.md())]
    assert [r.decision_id for r in results] == [""], results[:3]
    assert (results[-1].summary.evaluated, results[-1].summary.changed) == (decided, 0)


async def test_replay_judges_a_changed_outcome_with_the_recorded_mode_and_strict_checks(harness) -> None:
    """A candidate that denies everything changes what the rules said, not STRICT's own denials, and
    reports the verdict the decision would get (its recorded mode applied)."""
    h = harness
    await set_minimum_mode(h, common_pb2.MODE_MONITOR)
    strict = await h.decisions.Decide(request(agent="ghost", mode=common_pb2.MODE_STRICT), metadata=h.md("agent"))
    monitored = await h.decisions.Decide(request(mode=common_pb2.MODE_MONITOR), metadata=h.md("agent"))
    enforced = await h.decisions.Decide(request(mode=common_pb2.MODE_ENFORCE), metadata=h.md("agent"))
    assert strict.reason_code == "strict.agent_unregistered"
    frozen = 'package payments\nscope action.type in {"payment", "refund"}\nrule no deny "payment.frozen" when true\n'
    archive = write_archive(make_bundle({"payments.rules": frozen}, version="frozen", author="tests"))
    results = [r async for r in policies(h).ReplayBundle(policy_pb2.ReplayBundleRequest(
        bundle=archive, since=duration_pb2.Duration(seconds=3600)), metadata=h.md())]
    changed = {r.decision_id: r for r in results if r.decision_id}
    assert set(changed) == {monitored.decision_id, enforced.decision_id}
    for r in changed.values():
        assert (r.old_outcome, r.new_outcome, r.new_reason_code) == (common_pb2.OUTCOME_ALLOW, common_pb2.OUTCOME_DENY,
                                                                     "payment.frozen")
    summary = results[-1].summary
    assert (summary.evaluated, summary.changed, dict(summary.transitions)) == (3, 2, {"allow→deny": 2})


async def approve(h, approval_id: str, secret: str) -> approval_pb2.Approval:
    return await approvals(h).ResolveApproval(approval_pb2.ResolveApprovalRequest(
        approval_id=approval_id, action=approval_pb2.RESOLUTION_ACTION_APPROVE), metadata=md_for(secret))


async def ledger_types(h) -> list[str]:
    size = (await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=h.md())).tree_size
    stream = h.evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1), metadata=h.md())
    try:
        return [(await stream.read()).type for _ in range(size)]
    finally:
        stream.cancel()


@pytest.mark.parametrize(("status", "reason"), [(agent_pb2.AGENT_STATUS_PAUSED, "AGENT_PAUSED"),
                                                (agent_pb2.AGENT_STATUS_LOCKED, "AGENT_LOCKED")])
async def test_an_approval_issues_no_token_to_an_agent_paused_or_locked_meanwhile(harness, status, reason) -> None:
    """The finaliser judges an approved decision with the shared verdict: people approved what the
    rules routed to them, but a paused or locked agent is refused as Decide refuses it."""
    h = harness
    approver = add_key(h, "fran", roles=("finance_manager",))
    await register(h, "bot-1")
    pending = await h.decisions.Decide(request(amount="600"), metadata=h.md("agent_bot1"))
    await set_status(h, "bot-1", status)
    task = await approve(h, pending.approval.approval_id, approver)
    assert task.status == approval_pb2.APPROVAL_STATUS_APPROVED
    got = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=pending.decision_id),
                                        metadata=h.md("agent_bot1"))
    assert (got.state, got.decision_token) == (decision_pb2.DECISION_STATE_DENIED, "")
    assert got.warnings[-1] == f"approved, but no token was issued: agent `bot-1` is {reason[6:].lower()} ({reason})"
    waited = [d async for d in h.decisions.WaitDecision(decision_pb2.WaitDecisionRequest(
        decision_id=pending.decision_id), metadata=h.md("agent_bot1"))]
    assert waited[-1].state == decision_pb2.DECISION_STATE_DENIED  # final: the wait ends
    agent = await h.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"), metadata=h.md())
    assert agent.spend_today == "0"
    assert "token.withheld" in await ledger_types(h)
    await expect_error(h.decisions.Decide(request(), metadata=h.md("agent_bot1")), OK.PERMISSION_DENIED, reason)


async def test_an_approval_in_strict_mode_is_checked_against_the_agent_as_it_is_now(harness) -> None:
    h = harness
    approver = add_key(h, "fran", roles=("finance_manager",))
    await register(h, "bot-1", default_mode=common_pb2.MODE_STRICT)
    hashed = "sha256:" + "d" * 64
    first = await h.decisions.Decide(request(amount="600", input_hash=hashed), metadata=h.md("agent_bot1"))
    second = await h.decisions.Decide(request(amount="700", input_hash=hashed), metadata=h.md("agent_bot1"))
    assert first.mode == common_pb2.MODE_STRICT and first.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL
    await approve(h, first.approval.approval_id, approver)
    granted = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=first.decision_id),
                                            metadata=h.md("agent_bot1"))
    assert granted.state == decision_pb2.DECISION_STATE_APPROVED and granted.decision_token
    await h.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
        agent_id="bot-1", allowed_actions=["refund"], update_mask=field_mask_pb2.FieldMask(paths=["allowed_actions"])),
        metadata=h.md())
    await approve(h, second.approval.approval_id, approver)
    withheld = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=second.decision_id),
                                             metadata=h.md("agent_bot1"))
    assert (withheld.state, withheld.decision_token) == (decision_pb2.DECISION_STATE_DENIED, "")
    assert withheld.warnings[-1] == ("approved, but no token was issued: denied in STRICT mode "
                                     "(strict.action_not_allowed)")
    explained = await policies(h).ExplainDecision(policy_pb2.ExplainDecisionRequest(
        request=request(amount="700", input_hash=hashed)), metadata=h.md())
    assert explained.reason_code == "strict.action_not_allowed"  # what a Decide would answer now, too
