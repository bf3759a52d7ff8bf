"""One tenant compiling rules cannot freeze the others (issue 14).

ValidateRules, PublishBundle, ExplainDecision with a candidate and ReplayBundle compile policy
text the caller chose. Over a real gRPC server and its HTTP port: while one tenant validates
and publishes a 10,000-rule policy (one generated file of ~1.36 MB), another tenant's Decides
keep answering well inside their deadline and /healthz answers; a compile past the time limit
is RESOURCE_EXHAUSTED / COMPILE_TIME_EXCEEDED; a tenant may run one compile at a time
(RESOURCE_EXHAUSTED / COMPILE_LIMIT_EXCEEDED) while other tenants compile; a caller that goes
away takes its compile with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import grpc
import pytest

from gavel.adapters.grpc.server import GrpcServer
from gavel.adapters.rest.server import RestServer
from gavel.bootstrap import build
from gavel.bundles import make_bundle, write_archive
from gavel.config import Settings
from gavel.v1 import decision_pb2_grpc, policy_pb2, policy_pb2_grpc
from tests.e2e.conftest import database_url, seed_keys
from tests.e2e.generated import per_agent_rules
from tests.e2e.helpers import error_info, expect_error, request

DECIDE_DEADLINE = 3.0  # seconds; a Decide normally answers in milliseconds
LARGE = per_agent_rules(10_000)
MEDIUM = per_agent_rules(3_000)
SMALL = per_agent_rules(3)


class Served:
    def __init__(self, grpc_addr: str, http_port: int, runtime, keys: dict[str, str]):
        self.channel = grpc.aio.insecure_channel(grpc_addr)
        self.http = f"http://127.0.0.1:{http_port}"
        self.runtime = runtime
        self.keys = keys
        self.policies = policy_pb2_grpc.PolicyServiceStub(self.channel)
        self.decisions = decision_pb2_grpc.DecisionServiceStub(self.channel)

    def md(self, who: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[who]}"),)

    async def running(self, tenant: str, count: int, busy: asyncio.Future | None = None) -> None:
        """Wait until `tenant` has `count` compiles under way (or `busy` is done: too late)."""
        while self.runtime.compiler.running(tenant) != count and not (busy is not None and busy.done()):
            await asyncio.sleep(0.01)


@pytest.fixture
def compile_settings() -> dict:
    return {}


@pytest.fixture
async def served(tmp_path: Path, rules_dir: Path, compile_settings: dict):
    url, drop = database_url(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", rules=rules_dir, database_url=url, rate_limit_per_minute=0,
                        **compile_settings)
    runtime = build(settings)
    server = GrpcServer(runtime)
    port = await server.start("127.0.0.1:0")
    rest = RestServer(runtime, runtime.egress, server)
    http_port = await rest.start("127.0.0.1:0")
    s = Served(f"127.0.0.1:{port}", http_port, runtime, seed_keys(runtime))
    try:
        yield s
    finally:
        await s.channel.close()
        await rest.stop()
        await server.stop(0)
        drop()


async def _decide_while(s: Served, busy: asyncio.Task) -> list[float]:
    """acme's Decides, one after another, until `busy` is done; each one's seconds."""
    took = []
    while not busy.done():
        started = time.monotonic()
        d = await s.decisions.Decide(request(amount="90"), metadata=s.md("agent"), timeout=DECIDE_DEADLINE)
        took.append(time.monotonic() - started)
        assert d.reason_code == "payment.small"
    return took


async def _healthz(s: Served) -> int:
    async with aiohttp.ClientSession() as http, http.get(
            f"{s.http}/healthz", timeout=aiohttp.ClientTimeout(total=DECIDE_DEADLINE)) as response:
        return response.status


async def test_a_large_compile_leaves_other_tenants_deciding(served: Served) -> None:
    validating = asyncio.ensure_future(served.policies.ValidateRules(
        policy_pb2.ValidateRulesRequest(files={"fleet.rules": LARGE}), metadata=served.md("globex_test")))
    await served.running("globex", 1, validating)
    during_validate = await _decide_while(served, validating)
    assert (await validating).ok  # ~1.36 MB in one file is within the per-file limit

    archive = write_archive(make_bundle({"fleet.rules": LARGE}, version="fleet-v1"))
    publishing = asyncio.ensure_future(served.policies.PublishBundle(
        policy_pb2.PublishBundleRequest(bundle=archive), metadata=served.md("globex_test")))
    await served.running("globex", 1, publishing)
    health = asyncio.create_task(_healthz(served))
    during_publish = await _decide_while(served, publishing)
    published = await publishing
    assert await health == 200

    # Decides answered all along, each well inside its deadline (a compile on the event loop
    # held every one of them for the whole compile, several seconds)
    assert len(during_validate) >= 3 and len(during_publish) >= 3, (len(during_validate), len(during_publish))
    slowest = max(during_validate + during_publish)
    assert slowest < DECIDE_DEADLINE / 2, slowest
    active = await served.policies.GetActiveBundle(policy_pb2.GetActiveBundleRequest(),
                                                   metadata=served.md("globex_test"))
    assert active.bundle_hash == published.bundle_hash and active.version == "fleet-v1"


@pytest.mark.parametrize("compile_settings", [{"compile_timeout_seconds": 0.2}])
async def test_a_compile_past_the_time_limit_is_refused_and_changes_nothing(served: Served) -> None:
    before = await served.policies.GetActiveBundle(policy_pb2.GetActiveBundleRequest(),
                                                   metadata=served.md("admin_test"))
    await expect_error(served.policies.ValidateRules(policy_pb2.ValidateRulesRequest(files={"fleet.rules": MEDIUM}),
                                                     metadata=served.md("admin_test")),
                       grpc.StatusCode.RESOURCE_EXHAUSTED, "COMPILE_TIME_EXCEEDED")
    archive = write_archive(make_bundle({"fleet.rules": MEDIUM}, version="too-slow"))
    try:
        await served.policies.PublishBundle(policy_pb2.PublishBundleRequest(bundle=archive),
                                            metadata=served.md("admin_test"))
        raise AssertionError("a compile past the time limit was published")
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(err)[0] == "COMPILE_TIME_EXCEEDED"
        assert "GAVEL_COMPILE_TIMEOUT_SECONDS" in err.details() and "0.2 s" in err.details()
    after = await served.policies.GetActiveBundle(policy_pb2.GetActiveBundleRequest(),
                                                  metadata=served.md("admin_test"))
    assert after.bundle_hash == before.bundle_hash
    assert served.runtime.compiler.running("acme") == 0


@pytest.mark.parametrize("compile_settings", [{"max_compiles_per_tenant": 1}])
async def test_a_tenant_runs_one_compile_at_a_time_and_others_are_not_held_up(served: Served) -> None:
    first = asyncio.ensure_future(served.policies.ValidateRules(
        policy_pb2.ValidateRulesRequest(files={"fleet.rules": MEDIUM}), metadata=served.md("admin_test")))
    await served.running("acme", 1, first)
    try:
        await served.policies.ValidateRules(policy_pb2.ValidateRulesRequest(files={"p.rules": SMALL}),
                                            metadata=served.md("admin_test"))
        raise AssertionError("a second compile of the same tenant ran at once")
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(err)[0] == "COMPILE_LIMIT_EXCEEDED"
        assert "GAVEL_MAX_COMPILES_PER_TENANT" in err.details()
    other = await served.policies.ValidateRules(policy_pb2.ValidateRulesRequest(files={"p.rules": SMALL}),
                                                metadata=served.md("globex_test"))
    assert other.ok and not first.done()
    assert (await first).ok
    again = await served.policies.ValidateRules(policy_pb2.ValidateRulesRequest(files={"p.rules": SMALL}),
                                                metadata=served.md("admin_test"))
    assert again.ok


async def test_a_caller_that_goes_away_takes_its_compile_with_it(served: Served, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gavel.compile")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.policies.ValidateRules(policy_pb2.ValidateRulesRequest(files={"fleet.rules": LARGE}),
                                            metadata=served.md("admin_test"), timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await served.running("acme", 0)
    while served.runtime.compiler.compiles_in_workers():
        await asyncio.sleep(0.01)
    # killed (SIGKILL: exit code -9), not left to finish a compile nobody waits for
    stopped = [r.getMessage() for r in caplog.records if r.name == "gavel.compile"]
    assert any("its caller went away" in m and m.endswith("code -9") for m in stopped), stopped
