"""Tenant and environment isolation over a real server, for EVERY gavel.v1 RPC.

Tenant A is `acme` / `test`. Every method is classified (`PROBES`), and the classification must
cover every method in the proto descriptors, so a new RPC fails `test_every_rpc_is_classified`
until someone decides how it is isolated:

- owned: it takes the id of a tenant-owned resource. Called by another tenant (globex) and by
  A's other environment (acme / live) with A's id, it answers NOT_FOUND — exactly what it answers
  for an id of the same shape that never existed (same code, reason and message), so nothing
  tells the caller the id exists.
- token: it takes a decision token. A's token, presented by the others, is PERMISSION_DENIED /
  DECISION_TOKEN_INVALID and is not spent.
- scoped: it takes no foreign id and answers about the caller's own tenant + environment only;
  the probe checks that none of A's ids, hashes or agent facts show up, and that the caller's own
  do (so the probe can tell a leak from an empty answer).
- public: the same for everyone (the JWKS, rule validation). platform: operator keys only.

At the end, A's world is checked untouched: its token still burns, its approval is still pending
with no steps, its agent, key and bundle are as they were.

Within one tenant + environment, an agent key bound to another agent is a caller too: every method
an agent key may call that names an agent's request, decision or token answers it PERMISSION_DENIED
/ AGENT_MISMATCH (`BOUND_PROBES`, which must cover every such method).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from gavel.app.principal import AGENT_METHODS
from gavel.bundles import make_bundle, write_archive
from gavel.v1 import (
    admin_pb2,
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
from tests.e2e.helpers import request, token_parts
from tests.security.support import Answer, add_key, answer, first_message, md_for, same_shape

OK = grpc.StatusCode
SERVICE_MODULES = (
    decision_pb2, evidence_pb2, approval_pb2, policy_pb2, agent_pb2, admin_pb2,
)
ALL_METHODS = frozenset(f"{service.full_name}/{method.name}" for module in SERVICE_MODULES
                        for service in module.DESCRIPTOR.services_by_name.values() for method in service.methods)
HEX = "0123456789abcdef"
A_AGENT = "acme-bot"  # registered in A with a daily limit of 1 and paused: nobody else may see that


def bundle_archive(text: str, version: str) -> bytes:
    return write_archive(make_bundle({"payments.rules": text}, version=version, author="tests"))


A_BUNDLE_RULES = RULES + "\nlet acme_marker = 1\n"  # same behaviour as the rules directory, its own hash
DENY_ALL_RULES = 'package payments\nscope action.type == "payment"\nrule no deny "payment.frozen" when true\n'


# -- the worlds -----------------------------------------------------------------------------------


@dataclass
class World:
    """What one tenant + environment owns."""

    md: tuple
    agent_md: tuple
    allowed: decision_pb2.Decision | None = None
    pending: decision_pb2.Decision | None = None
    bundle_hash: str = ""
    key_id: str = ""
    key_secret: str = ""
    event_hashes: set[bytes] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    @property
    def token(self) -> str:
        return self.allowed.decision_token

    @property
    def jti(self) -> str:
        return token_parts(self.token)[1]["jti"]

    @property
    def approval_id(self) -> str:
        return self.pending.approval.approval_id


def approvals(h) -> approval_pb2_grpc.ApprovalServiceStub:
    return approval_pb2_grpc.ApprovalServiceStub(h.channel)


def policies(h) -> policy_pb2_grpc.PolicyServiceStub:
    return policy_pb2_grpc.PolicyServiceStub(h.channel)


async def read_events(h, md, count: int) -> list[evidence_pb2.LedgerEvent]:
    stream = h.evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1), metadata=md)
    events = []
    try:
        while len(events) < count:
            events.append(await asyncio.wait_for(stream.read(), 10))
    finally:
        stream.cancel()
    return events


async def tree_size(h, md) -> int:
    return (await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=md)).tree_size


async def build_tenant_a(h) -> World:
    """acme / test: a published bundle, a paused agent with a limit of 1, an allowed decision with
    its (unspent) token, a pending approval and an extra API key."""
    a = World(h.md("admin_test"), h.md("agent"))
    published = await policies(h).PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=bundle_archive(A_BUNDLE_RULES, "acme-v1")), metadata=a.md)
    a.bundle_hash = published.bundle_hash
    await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id=A_AGENT, daily_limit="1",
                                                                human_sponsor_id="sam"), metadata=a.md)
    a.allowed = await h.decisions.Decide(request(amount="100"), metadata=a.agent_md)
    a.pending = await h.decisions.Decide(request(amount="600"), metadata=a.agent_md)
    assert a.allowed.decision_token and a.pending.approval.approval_id
    for _ in range(20):  # A's chain is well ahead of any caller's: the proof probes ask past the caller's end
        await h.decisions.Decide(request(amount="5", currency="JPY"), metadata=a.agent_md)
    # the positive control for every "does the caller see A's agent?" probe: A itself does
    explained = await policies(h).ExplainDecision(policy_pb2.ExplainDecisionRequest(
        request=request(amount="100", agent=A_AGENT)), metadata=a.md)
    assert explained.reason_code == "budget.daily_exceeded"
    await h.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
        agent_id=A_AGENT, status=agent_pb2.AGENT_STATUS_PAUSED,
        update_mask=field_mask_pb2.FieldMask(paths=["status"])), metadata=a.md)
    key = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["auditor"]), metadata=a.md)
    a.key_id, a.key_secret = key.api_key.key_id, key.secret
    events = await read_events(h, a.md, await tree_size(h, a.md))
    a.event_hashes = {e.hash for e in events}
    a.ids = {a.allowed.decision_id, a.pending.decision_id, a.approval_id, a.bundle_hash, a.key_id, a.jti}
    return a


async def build_caller(h, md) -> World:
    """The foreign caller's own things, so that each scoped probe can see the caller's data."""
    me = World(md, md)
    await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id="own-bot", daily_limit="100000"),
                                 metadata=md)
    me.allowed = await h.decisions.Decide(request(amount="100", agent="own-bot"), metadata=md)
    me.pending = await h.decisions.Decide(request(amount="600", agent="own-bot"), metadata=md)
    assert me.allowed.decision_token and me.pending.approval.approval_id
    me.ids = {me.allowed.decision_id, me.pending.decision_id, me.approval_id}
    return me


# -- probes ---------------------------------------------------------------------------------------

Call = Callable[..., Awaitable]


@dataclass(frozen=True)
class Probe:
    method: str
    kind: str  # owned | token | scoped | public | platform
    run: Call
    id_of: Callable[[World], str] | None = None  # owned: A's id
    fake_of: Callable[[str], str] = same_shape
    callers: tuple[str, ...] = ("tenant", "env")  # which foreign callers the probe applies to
    as_approver: bool = False  # call with the caller's approver key
    as_live_admin: bool = False  # call with the caller's tenant's live admin key


def D(name: str) -> str:
    return f"gavel.v1.DecisionService/{name}"


def resolve(action: int, **kw) -> Call:
    async def run(h, md, ident):
        return await approvals(h).ResolveApproval(approval_pb2.ResolveApprovalRequest(
            approval_id=ident, action=action, note="foreign", **kw), metadata=md)
    return run


# Scoped probes: (h, caller md, A's world, the caller's world); they raise AssertionError on a leak.


def no_leak(text: str, a: World, what: str) -> None:
    leaked = sorted(i for i in a.ids if i and i in text)
    assert not leaked, f"{what} shows tenant A's {leaked}"


async def scoped_decide(h, md, a, me):
    d = await h.decisions.Decide(request(amount="100", agent=A_AGENT), metadata=md)
    # A's agent of that name is paused with a limit of 1; the caller's namespace has no such agent
    assert (d.outcome, d.reason_code) == (common_pb2.OUTCOME_ALLOW, "payment.small"), d.reason_code
    no_leak(str(d), a, "Decide")


async def scoped_decide_stream(h, md, a, me):
    async def one():
        yield request(amount="100", agent=A_AGENT, correlation_id="c1")

    out = [d async for d in h.decisions.DecideStream(one(), metadata=md)]
    assert [(d.outcome, d.reason_code) for d in out] == [(common_pb2.OUTCOME_ALLOW, "payment.small")]


async def scoped_explain(h, md, a, me):
    d = await policies(h).ExplainDecision(policy_pb2.ExplainDecisionRequest(
        request=request(amount="100", agent=A_AGENT)), metadata=md)
    assert d.reason_code == "payment.small", d.reason_code  # A's own explain says budget.daily_exceeded
    no_leak(d.explain.json, a, "ExplainDecision")


async def scoped_list_agents(h, md, a, me):
    page = await h.agents.ListAgents(agent_pb2.ListAgentsRequest(page_size=1000), metadata=md)
    names = {x.agent_id for x in page.agents}
    assert "own-bot" in names and A_AGENT not in names, names


async def scoped_register_agent(h, md, a, me):
    # A's agent id is a name in A's namespace: the caller may use it too, and it says nothing of A's
    made = await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id=A_AGENT, daily_limit="5000"),
                                        metadata=md)
    assert made.status == agent_pb2.AGENT_STATUS_ACTIVE and made.daily_limit == "5000" and made.spend_today == "0"


async def scoped_list_approvals(h, md, a, me):
    page = await approvals(h).ListApprovals(approval_pb2.ListApprovalsRequest(page_size=1000), metadata=md)
    ids = {t.approval_id for t in page.approvals}
    assert me.approval_id in ids and a.approval_id not in ids
    by_agent = await approvals(h).ListApprovals(approval_pb2.ListApprovalsRequest(agent_id="bot-1"), metadata=md)
    assert a.approval_id not in {t.approval_id for t in by_agent.approvals}


async def scoped_watch_approvals(h, md, a, me):
    watch = approvals(h).WatchApprovals(approval_pb2.WatchApprovalsRequest(), metadata=md)
    try:
        seen = [await asyncio.wait_for(watch.read(), 10)]  # the snapshot is taken before the writes below
        theirs = await h.decisions.Decide(request(amount="700"), metadata=a.agent_md)
        mine = await h.decisions.Decide(request(amount="700", agent="own-bot"), metadata=md)
        while seen[-1].snapshot:
            seen.append(await asyncio.wait_for(watch.read(), 10))
    finally:
        watch.cancel()
    ids = [u.approval.approval_id for u in seen]
    assert theirs.approval.approval_id not in ids and ids[-1] == mine.approval.approval_id, ids
    assert set(ids[:-1]) <= {me.approval_id} and me.approval_id in ids
    a.ids.add(theirs.approval.approval_id)


async def scoped_stream_events(h, md, a, me):
    events = await read_events(h, md, await tree_size(h, md))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    text = "\n".join(e.payload_json for e in events)
    assert me.allowed.decision_id in text
    no_leak(text, a, "StreamEvents")
    assert not {e.hash for e in events} & a.event_hashes, "StreamEvents shows A's events"


async def scoped_export(h, md, a, me):
    for fmt in (evidence_pb2.EXPORT_FORMAT_JSON_LINES, evidence_pb2.EXPORT_FORMAT_CSV):
        text = b"".join([c.data async for c in h.evidence.ExportEvidence(
            evidence_pb2.ExportEvidenceRequest(format=fmt), metadata=md)]).decode()
        assert me.allowed.decision_id in text
        no_leak(text, a, "ExportEvidence")


async def scoped_verify_ledger(h, md, a, me):
    before = await h.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=md)
    await h.decisions.Decide(request(amount="10"), metadata=a.agent_md)  # A writes meanwhile
    after = await h.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=md)
    assert before.ok and after.ok and after.checked == before.checked == await tree_size(h, md)


async def scoped_checkpoint(h, md, a, me):
    before = await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=md)
    await h.decisions.Decide(request(amount="10"), metadata=a.agent_md)
    after = await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=md)
    theirs = await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=a.md)
    assert (after.tree_size, after.root_hash) == (before.tree_size, before.root_hash)
    assert theirs.root_hash != after.root_hash and theirs.tree_size > after.tree_size


def leaf(event_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + event_hash).digest()


async def scoped_inclusion_proof(h, md, a, me):
    mine, theirs = await tree_size(h, md), await tree_size(h, a.md)
    assert theirs > mine
    beyond = await answer(h.evidence.GetInclusionProof(evidence_pb2.GetInclusionProofRequest(
        sequence=theirs, tree_size=theirs), metadata=md))
    assert not beyond.ok and beyond.code in (OK.INVALID_ARGUMENT, OK.NOT_FOUND, OK.OUT_OF_RANGE), beyond
    (first,) = await read_events(h, md, 1)
    proof = await h.evidence.GetInclusionProof(evidence_pb2.GetInclusionProofRequest(sequence=1, tree_size=mine),
                                               metadata=md)
    assert proof.leaf_hash == leaf(first.hash) and proof.leaf_hash not in {leaf(x) for x in a.event_hashes}


async def scoped_consistency_proof(h, md, a, me):
    mine, theirs = await tree_size(h, md), await tree_size(h, a.md)
    beyond = await answer(h.evidence.GetConsistencyProof(evidence_pb2.GetConsistencyProofRequest(
        first_size=mine, second_size=theirs), metadata=md))
    assert not beyond.ok and beyond.code in (OK.INVALID_ARGUMENT, OK.NOT_FOUND, OK.OUT_OF_RANGE), beyond


async def scoped_history(h, md, a, me):
    page = await policies(h).ListBundleHistory(policy_pb2.ListBundleHistoryRequest(page_size=1000), metadata=md)
    assert a.bundle_hash not in {x.bundle_hash for x in page.activations}


async def scoped_active_bundle(h, md, a, me):
    mine = await policies(h).GetActiveBundle(policy_pb2.GetActiveBundleRequest(), metadata=md)
    theirs = await policies(h).GetActiveBundle(policy_pb2.GetActiveBundleRequest(), metadata=a.md)
    assert theirs.bundle_hash == a.bundle_hash and mine.bundle_hash != a.bundle_hash


async def scoped_replay(h, md, a, me):
    results = [r async for r in policies(h).ReplayBundle(policy_pb2.ReplayBundleRequest(
        bundle=bundle_archive(DENY_ALL_RULES, "freeze"), since=duration_pb2.Duration(seconds=3600)), metadata=md)]
    changed = {r.decision_id for r in results if r.decision_id}
    assert me.allowed.decision_id in changed
    no_leak(" ".join(changed), a, "ReplayBundle")


async def scoped_publish(h, md, a, me):
    await policies(h).PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=bundle_archive(DENY_ALL_RULES, "freeze")), metadata=md)
    frozen = await h.decisions.Decide(request(amount="100", agent="own-bot"), metadata=md)
    assert frozen.reason_code == "payment.frozen"
    theirs = await h.decisions.Decide(request(amount="100"), metadata=a.agent_md)
    assert theirs.reason_code == "payment.small"  # A still decides with its own bundle


async def scoped_list_keys(h, md, a, me):
    page = await h.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(include_revoked=True, page_size=1000),
                                     metadata=md)
    assert page.api_keys and a.key_id not in {k.key_id for k in page.api_keys}
    assert len({(k.tenant, k.environment) for k in page.api_keys}) == 1


async def public_keys(h, md, a, me):
    mine = await h.evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(), metadata=md)
    theirs = await h.evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(), metadata=a.md)
    assert json.loads(mine.jwks_json) == json.loads(theirs.jwks_json)  # one signing key set per deployment


async def public_validate(h, md, a, me):
    r = await policies(h).ValidateRules(policy_pb2.ValidateRulesRequest(files={"p.rules": RULES}), metadata=md)
    assert r.ok


async def scoped_tenant_settings(h, md, a, me):
    # the caller lowers its own environment's minimum mode: A's stays ENFORCE and A's denials stay enforced
    mine = await h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(
        minimum_mode=common_pb2.MODE_MONITOR), metadata=md)
    assert mine.minimum_mode == common_pb2.MODE_MONITOR
    assert (await h.admin.GetTenantSettings(admin_pb2.GetTenantSettingsRequest(), metadata=md)).minimum_mode == \
        common_pb2.MODE_MONITOR
    theirs = await h.admin.GetTenantSettings(admin_pb2.GetTenantSettingsRequest(), metadata=a.md)
    assert theirs.minimum_mode == common_pb2.MODE_ENFORCE and not theirs.updated_by
    denied = await h.decisions.Decide(request(amount="5", currency="JPY"), metadata=a.agent_md)
    assert denied.enforced and not denied.decision_token
    # naming A's tenant + environment explicitly reaches nothing either
    got = await answer(h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(
        tenant="acme", environment=common_pb2.ENVIRONMENT_TEST, minimum_mode=common_pb2.MODE_MONITOR), metadata=md))
    assert not got.ok and (got.code, got.reason) in ((OK.NOT_FOUND, "NOT_FOUND"), (OK.PERMISSION_DENIED, "FORBIDDEN"))


async def platform_create_tenant(h, md, a, me):
    got = await answer(h.admin.CreateTenant(admin_pb2.CreateTenantRequest(name="Evil Corp"), metadata=md))
    assert (got.code, got.reason) == (OK.PERMISSION_DENIED, "FORBIDDEN"), got


# Token probes: (h, caller md, A's token, A's world) → the call.


def consume(h, md, token, a):
    return h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token), metadata=md)


def revoke_by_token(h, md, token, a):
    return h.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(token=token), metadata=md)


def report_with_token(h, md, token, a):
    return h.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=a.allowed.decision_id, decision_token=token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        amount="100.00", currency="USD"), metadata=md)


PROBES: list[Probe] = [
    # DecisionService
    Probe(D("Decide"), "scoped", scoped_decide),
    Probe(D("DecideStream"), "scoped", scoped_decide_stream),
    Probe(D("GetDecision"), "owned", lambda h, md, i: h.decisions.GetDecision(
        decision_pb2.GetDecisionRequest(decision_id=i), metadata=md), lambda a: a.allowed.decision_id),
    Probe(D("GetDecision"), "owned", lambda h, md, i: h.decisions.GetDecision(
        decision_pb2.GetDecisionRequest(decision_id=i), metadata=md), lambda a: a.pending.decision_id),
    Probe(D("WaitDecision"), "owned", lambda h, md, i: first_message(h.decisions.WaitDecision(
        decision_pb2.WaitDecisionRequest(decision_id=i), metadata=md)), lambda a: a.pending.decision_id),
    Probe(D("ReportExecution"), "owned", None, lambda a: a.allowed.decision_id),  # run: see owned_report
    Probe(D("ReportExecution"), "token", report_with_token),
    Probe(D("ConsumeToken"), "token", consume),
    Probe(D("RevokeToken"), "token", revoke_by_token),
    Probe(D("RevokeToken"), "owned", lambda h, md, i: h.decisions.RevokeToken(
        decision_pb2.RevokeTokenRequest(jti=i), metadata=md), lambda a: a.jti),
    # ApprovalService
    Probe("gavel.v1.ApprovalService/ListApprovals", "scoped", scoped_list_approvals),
    Probe("gavel.v1.ApprovalService/WatchApprovals", "scoped", scoped_watch_approvals),
    *[Probe("gavel.v1.ApprovalService/ResolveApproval", "owned", resolve(action, **kw), lambda a: a.approval_id,
            as_approver=True)
      for action, kw in ((approval_pb2.RESOLUTION_ACTION_APPROVE, {}), (approval_pb2.RESOLUTION_ACTION_DENY, {}),
                         (approval_pb2.RESOLUTION_ACTION_MODIFY, {"modified_action": common_pb2.Action(amount="550")}),
                         (approval_pb2.RESOLUTION_ACTION_ESCALATE, {"escalate_to": "cfo"}))],
    # EvidenceService
    Probe("gavel.v1.EvidenceService/GetPublicKeys", "public", public_keys),
    Probe("gavel.v1.EvidenceService/GetEvidencePack", "owned", lambda h, md, i: h.evidence.GetEvidencePack(
        evidence_pb2.GetEvidencePackRequest(decision_id=i), metadata=md), lambda a: a.allowed.decision_id),
    Probe("gavel.v1.EvidenceService/StreamEvents", "scoped", scoped_stream_events),
    Probe("gavel.v1.EvidenceService/VerifyLedger", "scoped", scoped_verify_ledger),
    Probe("gavel.v1.EvidenceService/GetCheckpoint", "scoped", scoped_checkpoint),
    Probe("gavel.v1.EvidenceService/GetInclusionProof", "scoped", scoped_inclusion_proof),
    Probe("gavel.v1.EvidenceService/GetConsistencyProof", "scoped", scoped_consistency_proof),
    Probe("gavel.v1.EvidenceService/ExportEvidence", "scoped", scoped_export),
    # PolicyService
    Probe("gavel.v1.PolicyService/ValidateRules", "public", public_validate),
    Probe("gavel.v1.PolicyService/GetActiveBundle", "scoped", scoped_active_bundle),
    # Bundles are kept per tenant (a live admin promotes what its test environment ran), so A's other
    # environment may name A's hashes by design; another tenant may not.
    Probe("gavel.v1.PolicyService/PromoteBundle", "owned", lambda h, md, i: policies(h).PromoteBundle(
        policy_pb2.PromoteBundleRequest(bundle_hash=i), metadata=md), lambda a: a.bundle_hash,
        lambda i: same_shape(i, HEX), callers=("tenant",), as_live_admin=True),
    Probe("gavel.v1.PolicyService/RollbackBundle", "owned", lambda h, md, i: policies(h).RollbackBundle(
        policy_pb2.RollbackBundleRequest(bundle_hash=i), metadata=md), lambda a: a.bundle_hash,
        lambda i: same_shape(i, HEX), callers=("tenant",)),
    Probe("gavel.v1.PolicyService/ListBundleHistory", "scoped", scoped_history),
    # A bundle is readable only in an environment that ran it: A's other environment never did.
    Probe("gavel.v1.PolicyService/GetBundle", "owned", lambda h, md, i: policies(h).GetBundle(
        policy_pb2.GetBundleRequest(bundle_hash=i), metadata=md), lambda a: a.bundle_hash,
        lambda i: same_shape(i, HEX)),
    Probe("gavel.v1.PolicyService/ExplainDecision", "scoped", scoped_explain),
    Probe("gavel.v1.PolicyService/ReplayBundle", "scoped", scoped_replay),
    # AgentService
    Probe("gavel.v1.AgentService/GetAgent", "owned", lambda h, md, i: h.agents.GetAgent(
        agent_pb2.GetAgentRequest(agent_id=i), metadata=md), lambda a: A_AGENT),
    Probe("gavel.v1.AgentService/UpdateAgent", "owned", lambda h, md, i: h.agents.UpdateAgent(
        agent_pb2.UpdateAgentRequest(agent_id=i, status=agent_pb2.AGENT_STATUS_ACTIVE, daily_limit="999999",
                                     update_mask=field_mask_pb2.FieldMask(paths=["status", "daily_limit"])),
        metadata=md), lambda a: A_AGENT),
    Probe("gavel.v1.AgentService/ListAgents", "scoped", scoped_list_agents),
    # AdminService
    Probe("gavel.v1.AdminService/RevokeApiKey", "owned", lambda h, md, i: h.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id=i), metadata=md), lambda a: a.key_id),
    Probe("gavel.v1.AdminService/CreateApiKey", "owned", lambda h, md, i: h.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(tenant=i, roles=["finance_manager"]), metadata=md), lambda a: "acme",
        lambda i: "acmf", callers=("tenant",)),
    Probe("gavel.v1.AdminService/ListApiKeys", "owned", lambda h, md, i: h.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(tenant=i), metadata=md), lambda a: "acme", lambda i: "acmf",
        callers=("tenant",)),
    Probe("gavel.v1.AdminService/ListApiKeys", "scoped", scoped_list_keys),
    Probe("gavel.v1.AdminService/CreateTenant", "platform", platform_create_tenant),
    Probe("gavel.v1.AdminService/GetTenantSettings", "owned", lambda h, md, i: h.admin.GetTenantSettings(
        admin_pb2.GetTenantSettingsRequest(tenant=i), metadata=md), lambda a: "acme", lambda i: "acmf",
        callers=("tenant",)),
    Probe("gavel.v1.AdminService/UpdateTenantSettings", "owned", lambda h, md, i: h.admin.UpdateTenantSettings(
        admin_pb2.UpdateTenantSettingsRequest(tenant=i, minimum_mode=common_pb2.MODE_MONITOR), metadata=md),
        lambda a: "acme", lambda i: "acmf", callers=("tenant",)),
    # last, because they change the caller's own world
    Probe("gavel.v1.PolicyService/PublishBundle", "scoped", scoped_publish),
    Probe("gavel.v1.AgentService/RegisterAgent", "scoped", scoped_register_agent),
    Probe("gavel.v1.AdminService/UpdateTenantSettings", "scoped", scoped_tenant_settings),
]


async def owned_report(h, md, ident, me):
    """ReportExecution naming A's decision with the caller's own genuine token."""
    return await h.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=ident, decision_token=me.token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        amount="100.00", currency="USD"), metadata=md)


def test_every_rpc_is_classified() -> None:
    """A new RPC fails here until it has an isolation probe in PROBES."""
    assert len(ALL_METHODS) == 37
    assert {p.method for p in PROBES} == ALL_METHODS, sorted(ALL_METHODS ^ {p.method for p in PROBES})
    assert {p.kind for p in PROBES} <= {"owned", "token", "scoped", "public", "platform"}
    for p in PROBES:
        assert (p.kind == "owned") == (p.id_of is not None), p


CALLERS = {
    # name: (admin key, approver key (tenant, env, roles), live admin key)
    "tenant": ("globex_test", ("globex", "test"), "globex_live"),
    "env": ("admin_live", ("acme", "live"), "admin_live"),
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
async def test_another_tenant_or_environment_sees_nothing_of_tenant_a(harness, caller) -> None:
    h = harness
    admin_key, (tenant, env), live_key = CALLERS[caller]
    approver = add_key(h, f"{caller}_approver", tenant=tenant, environment=env, roles=("finance_manager", "cfo"),
                       principal="mallory")
    a = await build_tenant_a(h)
    me = await build_caller(h, h.md(admin_key))
    problems: list[str] = []
    for probe in PROBES:
        if caller not in probe.callers:
            continue
        md = md_for(approver) if probe.as_approver else h.md(live_key) if probe.as_live_admin else h.md(admin_key)
        label = f"{probe.method} ({probe.kind})"
        try:
            if probe.kind == "owned":
                ident = probe.id_of(a)
                fake = probe.fake_of(ident)
                run = (lambda h_, md_, i: owned_report(h_, md_, i, me)) if probe.run is None else probe.run
                real, never = await answer(run(h, md, ident)), await answer(run(h, md, fake))
                if (real.code, real.reason) != (OK.NOT_FOUND, "NOT_FOUND"):
                    problems.append(f"{label}: A's id answered {real.shown()}")
                elif real.shown(ident) != never.shown(fake):
                    problems.append(f"{label}: A's id answered {real.shown(ident)}, a made-up id {never.shown(fake)}")
            elif probe.kind == "token":
                got: Answer = await answer(probe.run(h, md, a.token, a))
                if (got.code, got.reason) != (OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID"):
                    problems.append(f"{label}: A's token answered {got.shown()}")
            else:
                await probe.run(h, md, a, me)
        except AssertionError as exc:
            problems.append(f"{label}: {exc}")
        except grpc.aio.AioRpcError as exc:
            problems.append(f"{label}: unexpected {exc.code().name}: {exc.details()}")
    assert not problems, "\n".join(problems)
    await assert_untouched(h, a)


async def assert_untouched(h, a: World) -> None:
    """Nothing the others did changed A's world."""
    task = (await approvals(h).ListApprovals(approval_pb2.ListApprovalsRequest(), metadata=h.md("auditor")))
    (mine,) = [t for t in task.approvals if t.approval_id == a.approval_id]
    assert mine.status == approval_pb2.APPROVAL_STATUS_PENDING and mine.role == "finance_manager"
    assert not mine.steps and mine.approvals_received == 0
    agent = await h.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id=A_AGENT), metadata=a.md)
    assert agent.status == agent_pb2.AGENT_STATUS_PAUSED and agent.daily_limit == "1"
    active = await policies(h).GetActiveBundle(policy_pb2.GetActiveBundleRequest(), metadata=a.md)
    assert active.bundle_hash == a.bundle_hash
    await h.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=md_for(a.key_secret))  # not revoked
    spent = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=a.token), metadata=a.agent_md)
    assert spent.valid and spent.decision_id == a.allowed.decision_id
    verified = await h.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=a.md)
    assert verified.ok


async def test_the_other_environment_may_roll_back_only_to_what_it_ran(harness) -> None:
    """By design bundles are kept per tenant, not per environment: a live admin promotes a bundle by
    the hash its test environment published. Rolling live back to a hash only test ran is therefore
    an INVALID_TRANSITION, not a NOT_FOUND (the hash is the tenant's own; content hashes are not
    secrets). Another tenant gets NOT_FOUND (the matrix above)."""
    h = harness
    published = await policies(h).PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=bundle_archive(A_BUNDLE_RULES, "acme-v1")), metadata=h.md("admin_test"))
    got = await answer(policies(h).RollbackBundle(policy_pb2.RollbackBundleRequest(
        bundle_hash=published.bundle_hash), metadata=h.md("admin_live")))
    assert (got.code, got.reason) == (OK.FAILED_PRECONDITION, "INVALID_TRANSITION"), got
    promoted = await policies(h).PromoteBundle(policy_pb2.PromoteBundleRequest(bundle_hash=published.bundle_hash),
                                               metadata=h.md("admin_live"))
    assert promoted.bundle_hash == published.bundle_hash


# -- a key bound to another agent of the same tenant + environment ----------------------------------

BoundProbe = Callable[[object, tuple, World], Awaitable]


async def bound_decide_stream(h, md, a):
    async def one():
        yield request(amount="100", correlation_id="c1")  # names bot-1

    return [d async for d in h.decisions.DecideStream(one(), metadata=md)]


BOUND_PROBES: list[tuple[str, BoundProbe]] = [
    ("Decide", lambda h, md, a: h.decisions.Decide(request(amount="100"), metadata=md)),
    ("DecideStream", bound_decide_stream),
    ("GetDecision", lambda h, md, a: h.decisions.GetDecision(
        decision_pb2.GetDecisionRequest(decision_id=a.allowed.decision_id), metadata=md)),
    ("WaitDecision", lambda h, md, a: first_message(h.decisions.WaitDecision(
        decision_pb2.WaitDecisionRequest(decision_id=a.pending.decision_id), metadata=md))),
    ("ReportExecution", lambda h, md, a: report_with_token(h, md, a.token, a)),
    ("ConsumeToken", lambda h, md, a: consume(h, md, a.token, a)),
    ("RevokeToken", lambda h, md, a: revoke_by_token(h, md, a.token, a)),
    ("RevokeToken", lambda h, md, a: h.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(jti=a.jti),
                                                             metadata=md)),
]


def test_every_agent_method_naming_an_agent_has_a_binding_probe() -> None:
    """A new agent method fails here until a key bound to another agent is tried on it."""
    probed = {f"DecisionService.{name}" for name, _ in BOUND_PROBES}
    assert probed == AGENT_METHODS - {"EvidenceService.GetPublicKeys"}, sorted(probed ^ AGENT_METHODS)


async def test_a_key_bound_to_another_agent_reaches_nothing_of_bot_1(harness) -> None:
    """Tenant A's decisions are bot-1's. A key of A's own tenant and environment, bound to another
    agent, gets AGENT_MISMATCH from every method for bot-1's request, decision and token, and A's
    world is untouched afterwards (its token still burns). The key bound to bot-1 reads them."""
    h = harness
    a = await build_tenant_a(h)
    other = md_for(add_key(h, "other-bot-key", roles=("agent",), agents=("other-bot",)))
    problems = []
    for name, probe in BOUND_PROBES:
        got = await answer(probe(h, other, a))
        if (got.code, got.reason) != (OK.PERMISSION_DENIED, "AGENT_MISMATCH"):
            problems.append(f"{name}: {got.shown()}")
    assert not problems, "\n".join(problems)
    mine = await h.decisions.Decide(request(amount="100", agent="other-bot"), metadata=other)
    assert mine.agent_id == "other-bot" and mine.decision_token
    seen = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=a.allowed.decision_id),
                                         metadata=h.md("agent_bot1"))
    assert seen == a.allowed
    await assert_untouched(h, a)
