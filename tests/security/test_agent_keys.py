"""Agent keys bound to agents (issue 14), over a real server.

A leaked key of a low-limit bot must not act as the high-limit one: a key created with
`--agent ID` (or CreateApiKey.agents) decides, reads, waits for, reports, consumes and revokes for
its agents only (PERMISSION_DENIED / AGENT_MISMATCH otherwise), and STRICT mode denies what a key
not bound to the agent asks (`strict.agent_unbound`). The per-RPC matrix is
`tests/security/test_isolation_grpc.py::test_a_key_bound_to_another_agent_reaches_nothing_of_bot_1`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import grpc

from gavel.v1 import admin_pb2, agent_pb2, common_pb2, decision_pb2
from tests.e2e.helpers import expect_error, request
from tests.security.support import add_key, md_for

OK = grpc.StatusCode
HASHED = "sha256:" + "e" * 64


async def register(h, agent_id: str, daily: str, mode: int = 0) -> None:
    await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id=agent_id, daily_limit=daily, allowed_actions=["payment"], default_mode=mode), metadata=h.md())


async def test_a_low_limit_bots_key_cannot_act_as_the_high_limit_one(harness) -> None:
    h = harness
    await register(h, "small-bot", "100")
    await register(h, "big-bot", "1000000")
    small = md_for(add_key(h, "small", roles=("agent",), agents=("small-bot",)))
    big = md_for(add_key(h, "big", roles=("agent",), agents=("big-bot",)))
    refused = await expect_error(h.decisions.Decide(request(amount="400", agent="big-bot"), metadata=small),
                                 OK.PERMISSION_DENIED, "AGENT_MISMATCH")
    assert refused == []
    big_decision = await h.decisions.Decide(request(amount="400", agent="big-bot"), metadata=big)
    assert big_decision.outcome == common_pb2.OUTCOME_ALLOW
    # nothing of big-bot's is reachable with small-bot's key: not its decision, token, or report
    await expect_error(h.decisions.GetDecision(decision_pb2.GetDecisionRequest(
        decision_id=big_decision.decision_id), metadata=small), OK.PERMISSION_DENIED, "AGENT_MISMATCH")
    await expect_error(h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(
        token=big_decision.decision_token), metadata=small), OK.PERMISSION_DENIED, "AGENT_MISMATCH")
    # its own agent's request goes through, within its own (small) limit
    mine = await h.decisions.Decide(request(amount="400", agent="small-bot"), metadata=small)
    assert (mine.outcome, mine.reason_code) == (common_pb2.OUTCOME_DENY, "budget.daily_exceeded")
    spent = await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=big_decision.decision_token),
                                           metadata=big)
    assert spent.valid and spent.agent_id == "big-bot"


async def test_strict_mode_denies_a_key_not_bound_to_the_agent(harness) -> None:
    h = harness
    await register(h, "bot-1", "1000", mode=common_pb2.MODE_STRICT)
    bound = await h.decisions.Decide(request(input_hash=HASHED), metadata=h.md("agent_bot1"))
    assert (bound.outcome, bound.reason_code) == (common_pb2.OUTCOME_ALLOW, "payment.small")
    for who in ("agent", "admin_test"):  # an unbound agent key; the owner's key, bound to nothing
        d = await h.decisions.Decide(request(input_hash=HASHED), metadata=h.md(who))
        assert (d.outcome, d.reason_code, d.decision_token) == (common_pb2.OUTCOME_DENY, "strict.agent_unbound", "")
        assert d.explain.summary.startswith("deny: strict.agent_unbound (STRICT mode); rules said ")
    # outside STRICT an unbound agent key keeps working, for any agent
    await register(h, "bot-2", "1000")
    d = await h.decisions.Decide(request(agent="bot-2"), metadata=h.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_ALLOW and d.mode == common_pb2.MODE_ENFORCE


async def test_keys_are_bound_with_create_api_key_and_listed_with_their_agents(harness) -> None:
    h = harness
    made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        roles=["agent"], agents=["bot-1", "bot-2", "bot-1"], principal="runtime"), metadata=h.md())
    assert list(made.api_key.agents) == ["bot-1", "bot-2"]
    listed = await h.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=h.md())
    (mine,) = [k for k in listed.api_keys if k.key_id == made.api_key.key_id]
    assert list(mine.agents) == ["bot-1", "bot-2"]
    assert [list(k.agents) for k in listed.api_keys if k.principal == "agent-person"] == [[]]  # unbound
    d = await h.decisions.Decide(request(agent="bot-2"), metadata=md_for(made.secret))
    assert d.agent_id == "bot-2"
    await expect_error(h.decisions.Decide(request(agent="bot-3"), metadata=md_for(made.secret)),
                       OK.PERMISSION_DENIED, "AGENT_MISMATCH")
    for bad, reason in (({"roles": ["auditor"], "agents": ["bot-1"]}, "INVALID_REQUEST"),
                        ({"agents": ["bot-1"]}, "INVALID_REQUEST"),  # the owner's key: no agent role
                        ({"roles": ["agent"], "agents": ["bad id!"]}, "INVALID_REQUEST"),
                        ({"roles": ["agent"], "agents": [f"b{i}" for i in range(1001)]}, "INVALID_REQUEST")):
        fields = await expect_error(h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(**bad), metadata=h.md()),
                                    OK.INVALID_ARGUMENT, reason)
        assert fields == ["agents"], bad
    # a replay with the same idempotency key and agents returns the key; different agents conflict
    first = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        roles=["agent"], agents=["bot-1"], idempotency_key="k-1"), metadata=h.md())
    again = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        roles=["agent"], agents=["bot-1"], idempotency_key="k-1"), metadata=h.md())
    assert again.api_key == first.api_key and not again.secret
    await expect_error(h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        roles=["agent"], agents=["bot-2"], idempotency_key="k-1"), metadata=h.md()),
        OK.ALREADY_EXISTS, "IDEMPOTENCY_CONFLICT")


async def test_an_idempotency_key_cannot_replay_another_agents_decision(harness) -> None:
    """Idempotency keys are per tenant + environment, not per API key: bot-2's key naming bot-1 with
    bot-1's idempotency key must not get bot-1's decision (and its token) back."""
    h = harness
    other = md_for(add_key(h, "bot2-key", roles=("agent",), agents=("bot-2",)))
    first = await h.decisions.Decide(request(idempotency_key="pay-1"), metadata=h.md("agent_bot1"))
    assert first.decision_token
    await expect_error(h.decisions.Decide(request(idempotency_key="pay-1"), metadata=other),
                       OK.PERMISSION_DENIED, "AGENT_MISMATCH")
    await expect_error(h.decisions.Decide(request(agent="bot-2", idempotency_key="pay-1"), metadata=other),
                       OK.ALREADY_EXISTS, "IDEMPOTENCY_CONFLICT")


async def test_gavel_keys_create_binds_agent_keys_and_warns_about_unbound_ones(harness) -> None:
    """`gavel keys create --roles agent --agent ID` (repeatable), run against the running server's
    database: the key it prints acts for its agents only. An unbound agent key is made too, with a
    warning on stderr (stdout stays the key alone)."""
    h = harness
    settings = h.runtime.settings
    env = {**os.environ, "GAVEL_DATA_DIR": str(settings.data_dir), "GAVEL_DATABASE_URL": settings.store_url}

    def gavel(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gavel.cli", "keys", "create", "--tenant", "acme", "--env",
                               "test", *args], env=env, capture_output=True, text=True, timeout=60)

    bound = gavel("--roles", "agent", "--agent", "bot-1", "--agent", "bot-7")
    assert bound.returncode == 0 and bound.stderr == "" and bound.stdout.startswith("sk_test_")
    secret = bound.stdout.strip()
    record = h.runtime.store.run_sync(lambda uow: uow.keys.get(secret.split("_")[2]))
    assert record.agents == ("bot-1", "bot-7") and record.roles == ("agent",)
    assert (await h.decisions.Decide(request(agent="bot-7"), metadata=md_for(secret))).agent_id == "bot-7"
    await expect_error(h.decisions.Decide(request(agent="bot-2"), metadata=md_for(secret)),
                       OK.PERMISSION_DENIED, "AGENT_MISMATCH")

    unbound = gavel("--roles", "agent")
    assert unbound.returncode == 0 and unbound.stdout.startswith("sk_test_") and unbound.stdout.count("\n") == 1
    assert "warning: this agent key is bound to no agent" in unbound.stderr and "--agent ID" in unbound.stderr
    assert (await h.decisions.Decide(request(agent="bot-2"), metadata=md_for(unbound.stdout.strip()))).agent_id \
        == "bot-2"
    refused = gavel("--roles", "auditor", "--agent", "bot-1")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "only a key with the `agent` role can be bound to agents" in refused.stderr
    assert gavel("--roles", "finance_manager").stderr == ""  # only agent keys are warned about
