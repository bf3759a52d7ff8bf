"""Enforcement a caller cannot switch off (issue 14), over a real server.

A request's `mode` may only make the mode stricter than the agent's registered default mode and
the environment's minimum mode (an operator's setting, ENFORCE unless lowered): MONITOR and WARN
are the operator's choice, never the caller's. The mode applied is what is recorded, signed and
reserved against, and ConsumeToken tells the tool boundary whether a decision was enforced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
from google.protobuf import field_mask_pb2

from gavel.crypto.jws import sign_compact
from gavel.v1 import admin_pb2, agent_pb2, approval_pb2, approval_pb2_grpc, common_pb2, decision_pb2, evidence_pb2
from tests.e2e.helpers import expect_error, request, set_minimum_mode, token_parts
from tests.security.support import add_key, answer, md_for

OK = grpc.StatusCode
HASHED = "sha256:" + "b" * 64
RAISED_TO_STRICT = ("mode MONITOR was raised to STRICT (the agent's default mode): a request may make the mode "
                    "stricter, never looser")


async def register(h, agent_id: str = "bot-1", daily: str = "100", mode: int = 0) -> None:
    await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id=agent_id, daily_limit=daily, allowed_actions=["payment"], default_mode=mode), metadata=h.md())


async def spend_today(h, agent_id: str = "bot-1") -> str:
    return (await h.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id=agent_id), metadata=h.md())).spend_today


async def recorded(h, decision_id: str) -> dict:
    """The `decision.recorded` ledger event of a decision (what the evidence says was decided)."""
    size = (await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=h.md())).tree_size
    stream = h.evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1), metadata=h.md())
    try:
        events = [await stream.read() for _ in range(size)]
    finally:
        stream.cancel()
    (event,) = [json.loads(e.payload_json) for e in events
                if e.type == "decision.recorded" and json.loads(e.payload_json)["subject"] == decision_id]
    return event["data"]


async def test_an_agent_key_cannot_switch_enforcement_off_for_itself(harness) -> None:
    """The attack of issue 14: an agent registered STRICT with a daily limit of 100 sends a 90,000,000
    USD request with `mode: MONITOR`. It used to get DENY, enforced=false, a token, and a reservation
    past its limit; now it is decided in STRICT, denied, enforced, without a token."""
    h = harness
    await register(h, mode=common_pb2.MODE_STRICT)
    d = await h.decisions.Decide(request(amount="90000000", mode=common_pb2.MODE_MONITOR, input_hash=HASHED),
                                 metadata=h.md("agent_bot1"))
    assert (d.outcome, d.mode, d.enforced, d.decision_token) == (common_pb2.OUTCOME_DENY, common_pb2.MODE_STRICT,
                                                                 True, "")
    assert d.state == decision_pb2.DECISION_STATE_DENIED and d.reason_code == "payment.too_large"
    assert d.warnings == [RAISED_TO_STRICT]
    assert await spend_today(h) == "0"  # nothing was reserved
    # the mode applied is what was recorded: the decision, and its ledger event
    got = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                        metadata=h.md("agent_bot1"))
    assert got.mode == common_pb2.MODE_STRICT and got.enforced
    event = await recorded(h, d.decision_id)
    assert (event["mode"], event["enforced"], event["token"]) == ("strict", True, None)
    # the unbound agent key asking for less than STRICT gets STRICT too, and STRICT's own denial
    d = await h.decisions.Decide(request(amount="10", mode=common_pb2.MODE_WARN, input_hash=HASHED),
                                 metadata=h.md("agent"))
    assert (d.mode, d.reason_code, d.decision_token) == (common_pb2.MODE_STRICT, "strict.agent_unbound", "")
    # a stricter request than the agent's default is honoured
    await register(h, "bot-2", mode=common_pb2.MODE_ENFORCE)
    d = await h.decisions.Decide(request(amount="10", agent="bot-2", mode=common_pb2.MODE_STRICT),
                                 metadata=h.md("agent"))
    assert (d.mode, d.reason_code, d.warnings) == (common_pb2.MODE_STRICT, "strict.input_unverified", [])


async def test_a_monitor_request_is_raised_to_the_environments_minimum(harness) -> None:
    """Unregistered agents, and agents registered without a default mode, get the environment's
    minimum mode: ENFORCE until the operator lowers it."""
    h = harness
    d = await h.decisions.Decide(request(currency="JPY", agent="ghost", mode=common_pb2.MODE_MONITOR),
                                 metadata=h.md("agent"))
    assert (d.mode, d.enforced, d.decision_token, d.state) == (common_pb2.MODE_ENFORCE, True, "",
                                                               decision_pb2.DECISION_STATE_DENIED)
    assert d.warnings == ["mode MONITOR was raised to ENFORCE (this environment's minimum mode): a request may "
                          "make the mode stricter, never looser"]
    await register(h, daily="100000")  # no default mode
    d = await h.decisions.Decide(request(amount="5000", mode=common_pb2.MODE_WARN), metadata=h.md("agent"))
    assert d.mode == common_pb2.MODE_ENFORCE and d.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL
    assert not d.decision_token and d.approval.approval_id
    # an agent registered MONITOR is not in MONITOR while the environment's minimum is ENFORCE
    await register(h, "bot-3", daily="1000", mode=common_pb2.MODE_MONITOR)
    d = await h.decisions.Decide(request(currency="JPY", agent="bot-3"), metadata=h.md("agent"))
    assert (d.mode, d.enforced, d.decision_token) == (common_pb2.MODE_ENFORCE, True, "")
    # the operator lowers the minimum: the agent's default applies, and a request may still ask for WARN
    await set_minimum_mode(h, common_pb2.MODE_MONITOR)
    d = await h.decisions.Decide(request(currency="JPY", agent="bot-3"), metadata=h.md("agent"))
    assert (d.mode, d.enforced, d.state) == (common_pb2.MODE_MONITOR, False, decision_pb2.DECISION_STATE_APPROVED)
    d = await h.decisions.Decide(request(currency="JPY", agent="ghost", mode=common_pb2.MODE_MONITOR),
                                 metadata=h.md("agent"))
    assert d.mode == common_pb2.MODE_MONITOR and not d.warnings
    # a STRICT minimum makes every decision STRICT, whatever the agent or the request says
    await set_minimum_mode(h, common_pb2.MODE_STRICT)
    d = await h.decisions.Decide(request(agent="bot-3", mode=common_pb2.MODE_ENFORCE), metadata=h.md("agent"))
    assert (d.mode, d.reason_code) == (common_pb2.MODE_STRICT, "strict.input_unverified")
    assert d.warnings == ["mode ENFORCE was raised to STRICT (this environment's minimum mode): a request may "
                          "make the mode stricter, never looser"]


async def test_the_minimum_mode_is_an_operators_setting_per_environment(harness) -> None:
    h = harness
    settings = await h.admin.GetTenantSettings(admin_pb2.GetTenantSettingsRequest(), metadata=h.md())
    assert (settings.tenant, settings.environment, settings.minimum_mode, settings.updated_by) == (
        "acme", common_pb2.ENVIRONMENT_TEST, common_pb2.MODE_ENFORCE, "")
    for who in ("agent", "agent_bot1", "auditor", "finance"):
        await expect_error(set_minimum_mode(h, common_pb2.MODE_MONITOR, who), OK.PERMISSION_DENIED, "FORBIDDEN")
    fields = await expect_error(set_minimum_mode(h, common_pb2.MODE_UNSPECIFIED), OK.INVALID_ARGUMENT,
                                "MISSING_REQUIRED_FIELD")
    assert fields == ["minimum_mode"]
    fields = await expect_error(set_minimum_mode(h, 9), OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert fields == ["minimum_mode"]
    await expect_error(h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(
        environment=common_pb2.ENVIRONMENT_LIVE, minimum_mode=common_pb2.MODE_MONITOR), metadata=h.md()),
        OK.PERMISSION_DENIED, "FORBIDDEN")
    changed = await set_minimum_mode(h, common_pb2.MODE_WARN)
    assert changed.minimum_mode == common_pb2.MODE_WARN and changed.updated_by == "acme-owner"
    assert changed.update_time.seconds > 0
    # the live environment keeps its own minimum; a platform key may set any tenant's
    live = await h.admin.GetTenantSettings(admin_pb2.GetTenantSettingsRequest(), metadata=h.md("admin_live"))
    assert live.minimum_mode == common_pb2.MODE_ENFORCE
    await expect_error(h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(
        tenant="acme", minimum_mode=common_pb2.MODE_STRICT), metadata=h.md("platform")),
        OK.INVALID_ARGUMENT, "INVALID_REQUEST")  # a platform key names the environment
    made = await h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(
        tenant="acme", environment=common_pb2.ENVIRONMENT_LIVE, minimum_mode=common_pb2.MODE_STRICT),
        metadata=h.md("platform"))
    assert (made.environment, made.minimum_mode, made.updated_by) == (common_pb2.ENVIRONMENT_LIVE,
                                                                      common_pb2.MODE_STRICT, "operator")
    d = await h.decisions.Decide(request(), metadata=h.md("admin_live"))
    assert (d.mode, d.reason_code) == (common_pb2.MODE_STRICT, "strict.agent_unregistered")
    # an idempotent change replays; every change is in the environment's ledger
    again = await h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(
        minimum_mode=common_pb2.MODE_MONITOR, idempotency_key="floor-1"), metadata=h.md())
    assert again == await h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(
        minimum_mode=common_pb2.MODE_MONITOR, idempotency_key="floor-1"), metadata=h.md())
    size = (await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=h.md())).tree_size
    stream = h.evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1), metadata=h.md())
    try:
        events = [json.loads((await stream.read()).payload_json) for _ in range(size)]
    finally:
        stream.cancel()
    changes = [e["data"] for e in events if e["type"] == "settings.updated"]
    assert changes == [{"by": "acme-owner", "minimum_mode": {"from": "enforce", "to": "warn"}},
                       {"by": "acme-owner", "minimum_mode": {"from": "warn", "to": "monitor"}}]


def test_gavel_tenants_settings_shows_and_changes_the_minimum_mode(tmp_path) -> None:
    env = {**os.environ, "GAVEL_DATA_DIR": str(tmp_path / "data"), "GAVEL_DATABASE_URL": ""}

    def gavel(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gavel.cli", *args], env=env, capture_output=True, text=True,
                              timeout=60)

    assert gavel("tenants", "create", "Acme", "--id", "acme").returncode == 0
    shown = gavel("tenants", "settings", "acme", "--env", "live")
    assert (shown.returncode, shown.stdout) == (0, "acme/live: minimum mode ENFORCE (default)\n")
    changed = gavel("tenants", "settings", "Acme", "--env", "live", "--minimum-mode", "monitor")
    assert changed.returncode == 0 and changed.stdout.startswith("acme/live: minimum mode MONITOR (changed ")
    assert changed.stdout.rstrip().endswith("by gavel-cli)")
    assert gavel("tenants", "settings", "acme", "--env", "test").stdout == "acme/test: minimum mode ENFORCE (default)\n"
    missing = gavel("tenants", "settings", "nobody", "--env", "live")
    assert missing.returncode == 1 and "no tenant `nobody`" in missing.stderr


async def test_consume_token_says_whether_the_decision_was_enforced(harness) -> None:
    """A MONITOR or WARN decision gets a token whatever the rules said: ConsumeToken answers whether
    the decision was enforced and its outcome, and refuses an unenforced token whose rules did not
    allow unless the boundary asks for shadow-mode tokens."""
    h = harness
    enforced = await h.decisions.Decide(request(), metadata=h.md("agent"))
    assert token_parts(enforced.decision_token)[1]["enforced"] is True
    spent = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=enforced.decision_token),
                                           metadata=h.md("agent"))
    assert (spent.valid, spent.enforced, spent.outcome) == (True, True, common_pb2.OUTCOME_ALLOW)

    await set_minimum_mode(h, common_pb2.MODE_MONITOR)
    denied = await h.decisions.Decide(request(currency="JPY", mode=common_pb2.MODE_MONITOR), metadata=h.md("agent"))
    assert denied.decision_token and not denied.enforced and denied.outcome == common_pb2.OUTCOME_DENY
    claims = token_parts(denied.decision_token)[1]
    assert (claims["enforced"], claims["outcome"]) == (False, "deny")  # signed: offline verifiers see it too
    refused = await answer(h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=denied.decision_token),
                                                    metadata=h.md("agent")))
    assert (refused.code, refused.reason) == (OK.PERMISSION_DENIED, "DECISION_NOT_ENFORCED")
    assert "MONITOR or WARN" in refused.message and "said deny" in refused.message
    shadow = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(
        token=denied.decision_token, accept_unenforced=True), metadata=h.md("agent"))  # the refusal spent nothing
    assert (shadow.valid, shadow.enforced, shadow.outcome) == (True, False, common_pb2.OUTCOME_DENY)
    assert shadow.decision_id == denied.decision_id

    warned = await h.decisions.Decide(request(amount="5000", mode=common_pb2.MODE_WARN), metadata=h.md("agent"))
    assert warned.decision_token and warned.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL
    await expect_error(h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=warned.decision_token),
                                                metadata=h.md("agent")), OK.PERMISSION_DENIED,
                       "DECISION_NOT_ENFORCED")
    allowed = await h.decisions.Decide(request(mode=common_pb2.MODE_MONITOR), metadata=h.md("agent"))
    spent = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=allowed.decision_token),
                                           metadata=h.md("agent"))
    assert (spent.enforced, spent.outcome) == (False, common_pb2.OUTCOME_ALLOW)  # an allow passes unasked

    # a token people approved: enforced, and its outcome is the rules' require_approval
    await set_minimum_mode(h, common_pb2.MODE_ENFORCE)
    pending = await h.decisions.Decide(request(amount="600"), metadata=h.md("agent"))
    approver = add_key(h, "approver", roles=("finance_manager",), principal="fran")
    await _approve(h, pending.approval.approval_id, approver)
    approved = await h.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=pending.decision_id),
                                             metadata=h.md("agent"))
    spent = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=approved.decision_token),
                                           metadata=h.md("agent"))
    assert (spent.enforced, spent.outcome) == (True, common_pb2.OUTCOME_REQUIRE_APPROVAL)


async def _approve(h, approval_id: str, approver: str) -> None:
    await approval_pb2_grpc.ApprovalServiceStub(h.channel).ResolveApproval(approval_pb2.ResolveApprovalRequest(
        approval_id=approval_id, action=approval_pb2.RESOLUTION_ACTION_APPROVE), metadata=md_for(approver))


async def test_a_token_issued_before_tokens_carried_enforcement_is_judged_by_its_decision(harness) -> None:
    """Tokens signed before `enforced`/`outcome` were claims (a replica not yet upgraded) are judged
    by their decision's record: an unenforced deny is still refused."""
    h = harness
    await set_minimum_mode(h, common_pb2.MODE_MONITOR)
    denied = await h.decisions.Decide(request(currency="JPY", mode=common_pb2.MODE_MONITOR), metadata=h.md("agent"))
    claims = token_parts(denied.decision_token)[1]
    old = sign_compact({k: v for k, v in claims.items() if k not in ("enforced", "outcome")},
                       h.runtime.signing.keyset().active)
    await expect_error(h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=old), metadata=h.md("agent")),
                       OK.PERMISSION_DENIED, "DECISION_NOT_ENFORCED")
    spent = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=old, accept_unenforced=True),
                                           metadata=h.md("agent"))
    assert (spent.enforced, spent.outcome) == (False, common_pb2.OUTCOME_DENY)


async def test_pausing_an_agent_registered_in_monitor_still_refuses_it(harness) -> None:
    """Paused and locked agents are refused before any rule in every mode, MONITOR included."""
    h = harness
    await set_minimum_mode(h, common_pb2.MODE_MONITOR)
    await register(h, mode=common_pb2.MODE_MONITOR)
    await h.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
        agent_id="bot-1", status=agent_pb2.AGENT_STATUS_PAUSED, update_mask=field_mask_pb2.FieldMask(paths=["status"])),
        metadata=h.md())
    await expect_error(h.decisions.Decide(request(mode=common_pb2.MODE_MONITOR), metadata=h.md("agent")),
                       OK.PERMISSION_DENIED, "AGENT_PAUSED")
