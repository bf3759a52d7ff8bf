"""Operations over a real server: health, key rotation, admin and key lifecycle, budget sweep."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gavel.app.maintenance import release_expired_tokens
from gavel.v1 import admin_pb2, agent_pb2, common_pb2, decision_pb2, evidence_pb2
from tests.e2e.helpers import expect_error, request, set_minimum_mode, token_parts

OK = grpc.StatusCode


async def health(h) -> int:
    reply = await health_pb2_grpc.HealthStub(h.channel).Check(health_pb2.HealthCheckRequest(service=""))
    return reply.status


async def test_health_and_reflection(harness) -> None:
    assert await health(harness) == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(harness.channel)

    async def ask():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for reply in stub.ServerReflectionInfo(ask()):
        names = {s.name for s in reply.list_services_response.service}
        break
    assert {"gavel.v1.DecisionService", "gavel.v1.AgentService", "gavel.v1.AdminService",
            "gavel.v1.EvidenceService", "grpc.health.v1.Health"} <= names


@pytest.mark.skipif(bool(os.environ.get("GAVEL_TEST_DATABASE_URL")), reason="moves the SQLite file")
async def test_health_follows_the_store_and_decide_never_allows_without_it(harness, tmp_path) -> None:
    db = tmp_path / "data" / "gavel.db"
    aside = tmp_path / "aside"
    aside.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if (tmp_path / "data" / f"gavel.db{suffix}").exists():
            os.rename(tmp_path / "data" / f"gavel.db{suffix}", aside / f"gavel.db{suffix}")
    try:
        await expect_error(harness.decisions.Decide(request(), metadata=harness.md("agent")), OK.UNAVAILABLE,
                           "STORE_UNAVAILABLE")
        for _ in range(40):
            if await health(harness) == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.25)
        assert await health(harness) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        for suffix in ("", "-wal", "-shm"):
            if (aside / f"gavel.db{suffix}").exists():
                os.rename(aside / f"gavel.db{suffix}", db.with_name(f"gavel.db{suffix}"))
    for _ in range(40):
        if await health(harness) == health_pb2.HealthCheckResponse.SERVING:
            break
        await asyncio.sleep(0.25)
    assert await health(harness) == health_pb2.HealthCheckResponse.SERVING
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_ALLOW


async def test_signing_keys_are_private_and_rotation_keeps_old_tokens_valid(harness, tmp_path) -> None:
    key_file = tmp_path / "data" / "signing-keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    before = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    old_kid = token_parts(before.decision_token)[0]["kid"]
    harness.runtime.signing.rotate(datetime.now(UTC), timedelta(days=1))
    after = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    new_kid = token_parts(after.decision_token)[0]["kid"]
    assert new_kid != old_kid
    jwks = json.loads((await harness.evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(),
                                                            metadata=harness.md("agent"))).jwks_json)
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    for d in (before, after):
        r = await harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                                 metadata=harness.md("agent"))
        assert r.valid


async def test_admin_tenants_and_key_lifecycle(harness) -> None:
    t = await harness.admin.CreateTenant(admin_pb2.CreateTenantRequest(name="Initech"), metadata=harness.md("platform"))
    assert t.tenant_id == "initech"
    await expect_error(harness.admin.CreateTenant(admin_pb2.CreateTenantRequest(name="Initech"),
                                                  metadata=harness.md("platform")),
                       OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    await expect_error(harness.admin.CreateTenant(admin_pb2.CreateTenantRequest(name="x"), metadata=harness.md()),
                       OK.PERMISSION_DENIED, "FORBIDDEN")
    created = await harness.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        tenant="initech", environment=common_pb2.ENVIRONMENT_LIVE, roles=["agent"], principal="bot"),
        metadata=harness.md("platform"))
    assert created.secret.startswith("sk_live_") and created.api_key.tenant == "initech"
    # an admin key creates keys for its own tenant and environment only
    mine = await harness.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["auditor"]), metadata=harness.md())
    assert mine.secret.startswith("sk_test_") and mine.api_key.tenant == "acme"
    await expect_error(harness.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        environment=common_pb2.ENVIRONMENT_LIVE), metadata=harness.md()), OK.PERMISSION_DENIED, "FORBIDDEN")
    await expect_error(harness.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(tenant="initech"),
                                                  metadata=harness.md()), OK.NOT_FOUND, "NOT_FOUND")
    listed = await harness.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=harness.md())
    assert mine.api_key.key_id in {k.key_id for k in listed.api_keys}
    assert all(k.tenant == "acme" and k.environment == common_pb2.ENVIRONMENT_TEST for k in listed.api_keys)
    # the new key works, and revocation is effective at once
    agent_key = await harness.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["agent"]), metadata=harness.md())
    md = (("authorization", f"Bearer {agent_key.secret}"),)
    await harness.decisions.Decide(request(), metadata=md)
    revoked = await harness.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=agent_key.api_key.key_id),
                                               metadata=harness.md())
    assert revoked.HasField("revoked_at")
    await expect_error(harness.decisions.Decide(request(), metadata=md), OK.UNAUTHENTICATED, "UNAUTHENTICATED")
    await expect_error(harness.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=agent_key.api_key.key_id),
                                                  metadata=harness.md("globex_test")), OK.NOT_FOUND, "NOT_FOUND")


async def test_agents_register_list_update_and_isolation(harness) -> None:
    a = await harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id="bot-1", name="Bot", daily_limit="100.50", allowed_actions=["refund", "payment", "refund"],
        default_mode=common_pb2.MODE_WARN), metadata=harness.md())
    assert a.status == agent_pb2.AGENT_STATUS_ACTIVE and list(a.allowed_actions) == ["payment", "refund"]
    assert a.daily_limit == "100.5" and a.default_mode == common_pb2.MODE_WARN
    await expect_error(harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id="bot-1"),
                                                    metadata=harness.md()), OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    fields = await expect_error(harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id="bot-2", daily_limit="lots"), metadata=harness.md()), OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert fields == ["daily_limit"]
    for i in range(5):
        await harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id=f"z-{i}"), metadata=harness.md())
    page = await harness.agents.ListAgents(agent_pb2.ListAgentsRequest(page_size=4), metadata=harness.md())
    assert [x.agent_id for x in page.agents] == ["bot-1", "z-0", "z-1", "z-2"] and page.next_page_token
    page = await harness.agents.ListAgents(agent_pb2.ListAgentsRequest(page_size=4, page_token=page.next_page_token),
                                           metadata=harness.md())
    assert [x.agent_id for x in page.agents] == ["z-3", "z-4"] and not page.next_page_token
    await expect_error(harness.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"),
                                               metadata=harness.md("admin_live")), OK.NOT_FOUND, "NOT_FOUND")
    # the agent's default mode applies when the request names none, unless the environment's
    # minimum (ENFORCE until its operator lowers it) is stricter
    d = await harness.decisions.Decide(request(currency="JPY"), metadata=harness.md("agent"))
    assert d.mode == common_pb2.MODE_ENFORCE and d.enforced and not d.decision_token
    await set_minimum_mode(harness, common_pb2.MODE_MONITOR)
    d = await harness.decisions.Decide(request(currency="JPY"), metadata=harness.md("agent"))
    assert d.mode == common_pb2.MODE_WARN and not d.enforced and d.warnings


@pytest.mark.parametrize("settings_overrides", [{"token_ttl_seconds": 1}])
async def test_expired_unused_tokens_release_their_budget(harness) -> None:
    await harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id="bot-1", daily_limit="1000"),
                                       metadata=harness.md())
    used = await harness.decisions.Decide(request(amount="100"), metadata=harness.md("agent"))
    await harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=used.decision_token),
                                         metadata=harness.md("agent"))
    await harness.decisions.Decide(request(amount="200"), metadata=harness.md("agent"))
    a = await harness.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"), metadata=harness.md())
    assert a.spend_today == "300"
    await asyncio.sleep(1.5)
    released = await harness.runtime.store.write(lambda uow: release_expired_tokens(uow, datetime.now(UTC)))
    assert released == 1  # the consumed token keeps its reservation: the action presumably ran
    a = await harness.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"), metadata=harness.md())
    assert a.spend_today == "100"


async def test_every_gavel_method_is_behind_the_guard(harness) -> None:
    """Each method of each gavel.v1 service, called without a key, is refused UNAUTHENTICATED
    before its handler runs: none was registered around the guard."""
    from gavel.v1 import approval_pb2, policy_pb2

    files = (decision_pb2, evidence_pb2, approval_pb2, policy_pb2, agent_pb2, admin_pb2)
    methods = [(service, method) for module in files for service in module.DESCRIPTOR.services_by_name.values()
               for method in service.methods]
    assert len(methods) == 37  # every rpc in proto/gavel/v1
    for service, method in methods:
        path = f"/{service.full_name}/{method.name}"
        empty = b""  # every request message accepts the empty encoding
        if method.server_streaming:
            call = (harness.channel.stream_stream if method.client_streaming else harness.channel.unary_stream)(path)
            request_arg = iter([empty]) if method.client_streaming else empty

            async def drain(call=call, request_arg=request_arg):
                async for _ in call(request_arg):
                    pass

            await expect_error(drain(), OK.UNAUTHENTICATED, "UNAUTHENTICATED")
        else:
            await expect_error(harness.channel.unary_unary(path)(empty), OK.UNAUTHENTICATED, "UNAUTHENTICATED")
