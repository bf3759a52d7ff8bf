"""Evidence packs say what was true at the time (issue 14), over a real server.

- An agent registered under an existing decision's id adds nothing to that decision's pack:
  packs collect the events that name the decision, not everything that shares its subject.
- The pack's `agent` section is the registry facts recorded with the decision (status, limits,
  spend today and this month as the rules saw them), not the agent as it is now.
- The SoD section names the human sponsor approvers were checked against and where it came
  from (the request, or the agent registry), and each check lists the sponsors it compared.
Every pack still passes `gavel verify`.
"""

from __future__ import annotations

import json

import grpc
from google.protobuf import field_mask_pb2

from gavel.v1 import agent_pb2, approval_pb2, approval_pb2_grpc, decision_pb2, evidence_pb2
from tests.e2e.helpers import expect_error, request
from tests.e2e.test_evidence import gavel_verify, jwks
from tests.security.support import add_key, md_for


async def pack_of(h, decision_id: str) -> dict:
    r = await h.evidence.GetEvidencePack(evidence_pb2.GetEvidencePackRequest(decision_id=decision_id),
                                         metadata=h.md("auditor"))
    return json.loads(r.pack_json)


async def test_an_agent_registered_under_a_decision_id_adds_nothing_to_its_pack(harness, tmp_path) -> None:
    d = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("agent"))
    # the agent id alphabet admits a decision's id: register, update and pause such an agent
    await harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id=d.decision_id, daily_limit="5"),
                                       metadata=harness.md())
    await harness.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
        agent_id=d.decision_id, status=agent_pb2.AGENT_STATUS_PAUSED,
        update_mask=field_mask_pb2.FieldMask(paths=["status"])), metadata=harness.md())
    stored = await harness.runtime.store.read(lambda uow: uow.ledger.for_subject("acme", "test", d.decision_id))
    assert len(stored) >= 3  # the decision's event and the agent's share the subject

    pack = await pack_of(harness, d.decision_id)
    assert [e["type"] for e in pack["events"]] == ["decision.recorded"]
    assert [p["sequence"] for p in pack["proof"]["inclusion"]] == [e["sequence"] for e in pack["events"]]
    assert pack["agent"]["agent_id"] == "bot-1"  # the decision's agent, not the namesake
    out = gavel_verify(tmp_path, pack, await jwks(harness))
    assert out.returncode == 0, out.stdout + out.stderr


async def test_the_pack_shows_the_agent_as_the_rules_saw_it(harness, tmp_path) -> None:
    await harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id="bot-1", daily_limit="1000", monthly_limit="20000", control_tier="supervised",
        human_sponsor_id="sue@acme.example"), metadata=harness.md())
    first = await harness.decisions.Decide(request(amount="100"), metadata=harness.md("agent"))
    assert first.reason_code == "payment.small"  # reserves 100 against today's and this month's spend
    second = await harness.decisions.Decide(request(amount="50"), metadata=harness.md("agent"))
    # the registry changes afterwards: the pack must not show that
    await harness.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
        agent_id="bot-1", status=agent_pb2.AGENT_STATUS_PAUSED, daily_limit="5",
        update_mask=field_mask_pb2.FieldMask(paths=["status", "daily_limit"])), metadata=harness.md())

    pack = await pack_of(harness, second.decision_id)
    agent = pack["agent"]
    assert (agent["agent_id"], agent["registered"], agent["status"], agent["daily_limit"], agent["monthly_limit"],
            agent["control_tier"]) == ("bot-1", True, "active", "1000", "20000", "supervised")
    assert (agent["spend_today"], agent["spend_month"]) == ("100", "100")
    recorded = await harness.runtime.store.read(lambda uow: uow.decisions.get("acme", "test", second.decision_id))
    assert agent["as_of"] == recorded.created_at.isoformat()
    assert pack["facts"]["agent"]["spend"] == {"today": "100", "month": "100"}  # the same facts, as the rules read them

    unregistered = await harness.decisions.Decide(request(amount="90", agent="nobody"), metadata=harness.md("agent"))
    assert (await pack_of(harness, unregistered.decision_id))["agent"]["registered"] is False
    out = gavel_verify(tmp_path, pack, await jwks(harness))
    assert out.returncode == 0, out.stdout + out.stderr


async def test_the_sod_section_names_the_sponsor_that_was_checked(harness, tmp_path) -> None:
    h = harness
    sue = add_key(h, "sue", roles=("finance_manager",), principal="sue@acme.example")
    alice = add_key(h, "alice", roles=("finance_manager",), principal="alice@acme.example")
    await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id="bot-1", daily_limit="100000", human_sponsor_id="sue@acme.example"), metadata=h.md())
    approvals = approval_pb2_grpc.ApprovalServiceStub(h.channel)

    # the sponsor comes from the registry: the request names none
    d = await h.decisions.Decide(request(amount="600", actors=decision_pb2.Actors(requester_id="rita@acme.example")),
                                 metadata=h.md("agent"))
    approve = approval_pb2.ResolveApprovalRequest(approval_id=d.approval.approval_id,
                                                  action=approval_pb2.RESOLUTION_ACTION_APPROVE)
    await expect_error(approvals.ResolveApproval(approve, metadata=md_for(sue)), grpc.StatusCode.PERMISSION_DENIED,
                       "SOD_VIOLATION")
    await approvals.ResolveApproval(approve, metadata=md_for(alice))
    pack = await pack_of(h, d.decision_id)
    sod = pack["sod"]
    assert (sod["requester_id"], sod["human_sponsor_id"], sod["human_sponsor_from"]) == (
        "rita@acme.example", "sue@acme.example", "registry")
    checks = [c["data"] for c in sod["checks"]]
    assert [(c["approver"], c["passed"]) for c in checks] == [("sue@acme.example", False),
                                                              ("alice@acme.example", True)]
    assert all(c["human_sponsors"] == [{"id": "sue@acme.example", "from": "registry"}] for c in checks)
    assert all(c["requester_id"] == "rita@acme.example" for c in checks)
    out = gavel_verify(tmp_path, pack, await jwks(h))
    assert out.returncode == 0, out.stdout + out.stderr

    # the sponsor comes from the request: both it and the registry's are checked
    d = await h.decisions.Decide(request(amount="600", actors=decision_pb2.Actors(
        requester_id="rita@acme.example", human_sponsor_id="sam@acme.example")), metadata=h.md("agent"))
    await approvals.ResolveApproval(approval_pb2.ResolveApprovalRequest(
        approval_id=d.approval.approval_id, action=approval_pb2.RESOLUTION_ACTION_APPROVE), metadata=md_for(alice))
    sod = (await pack_of(h, d.decision_id))["sod"]
    assert (sod["human_sponsor_id"], sod["human_sponsor_from"]) == ("sam@acme.example", "request")
    (check,) = sod["checks"]
    assert check["data"]["human_sponsors"] == [{"id": "sam@acme.example", "from": "request"},
                                               {"id": "sue@acme.example", "from": "registry"}]
