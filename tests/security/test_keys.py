"""API keys and signing keys: stored as hashes, compared in constant time, never logged, revoked at
once (also for streams already open and with the key cache warm), and signing keys on disk
readable by the owner only, written without following planted files."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import pathlib
import re
import signal
import stat
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import aiohttp
import grpc
import pytest
import sqlalchemy as sa

import gavel
from gavel.adapters.grpc.server import GrpcServer
from gavel.adapters.keystore import FileSigningKeys, KeyFileError
from gavel.app import keys as keys_module
from gavel.app.errors import Unauthenticated
from gavel.app.keys import KeyCache, check_record, hash_key, mint_key
from gavel.app.model import ApiKeyRecord
from gavel.bootstrap import build
from gavel.crypto.keys import b64url_encode
from gavel.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    approval_pb2,
    approval_pb2_grpc,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    evidence_pb2,
)
from tests.e2e.helpers import expect_error, request
from tests.e2e.test_serve_process import GAVEL, env_for, free_port, wait_serving
from tests.security.support import bearer, md_for, start_rest

OK = grpc.StatusCode


# -- stored as hashes ------------------------------------------------------------------------------------


def secret_part(key: str) -> str:
    """The 43 random characters after the public prefix and key id (or a webhook secret's)."""
    match = keys_module._KEY.fullmatch(key)
    return match.group(3) if match else key.split("_", 1)[1]


def database_values(url: str) -> list[object]:
    """Every value of every row of every table, read with a connection of its own."""
    engine = sa.create_engine(url)
    values: list[object] = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    values.extend(bytes(v) if isinstance(v, memoryview) else v for v in row)  # PostgreSQL bytea
    finally:
        engine.dispose()
    return values


def as_blob(values: list[object]) -> bytes:
    return b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in values)


def raw_sqlite_files(h) -> bytes:
    """The SQLite database, its WAL and shared-memory files, byte for byte (freed pages too)."""
    url = h.runtime.settings.store_url
    if not url.startswith("sqlite"):
        return b""
    db = pathlib.Path(url.split("///", 1)[1].split("?", 1)[0])
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
                    if p.exists())


async def use_every_key(h) -> list[str]:
    """Create keys over the API, use each one, and make tokens; returns every key secret made."""
    made = []
    for roles in ([], ["agent"], ["auditor"], ["finance_manager"]):
        created = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=roles, principal="p"),
                                             metadata=h.md())
        made.append(created.secret)
    platform_made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        tenant="globex", environment=common_pb2.ENVIRONMENT_LIVE, roles=["agent"]), metadata=h.md("platform"))
    made.append(platform_made.secret)
    for secret in [*h.keys.values(), *made]:
        try:
            await h.evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(), metadata=md_for(secret))
        except grpc.aio.AioRpcError as err:
            assert err.code() == OK.PERMISSION_DENIED  # platform and approver keys may not call it; still authenticated
    d = await h.decisions.Decide(request(), metadata=h.md("agent"))
    await h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token), metadata=h.md("agent"))
    return [*h.keys.values(), *made]


async def test_api_keys_are_stored_only_as_hashes(harness) -> None:
    h = harness
    secrets = await use_every_key(h)
    values = database_values(h.runtime.settings.store_url)
    blob = as_blob(values) + raw_sqlite_files(h)
    for key in secrets:
        assert key.encode() not in blob and secret_part(key).encode() not in blob, key[:24]
        digest = hash_key(key)
        assert digest in values or digest.hex() in blob.decode("utf-8", "replace"), "the key's hash is what is stored"
    seed = h.runtime.signing.keyset().active.seed
    assert seed not in blob and b64url_encode(seed).encode() not in blob  # signing keys live in their own file


async def test_a_replayable_create_api_key_keeps_no_secret_in_the_database(harness) -> None:
    h = harness
    created = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["agent"], idempotency_key="once"),
                                         metadata=h.md())
    replayed = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["agent"], idempotency_key="once"),
                                          metadata=h.md())
    assert created.secret and replayed.secret == "" and replayed.api_key.key_id == created.api_key.key_id
    blob = as_blob(database_values(h.runtime.settings.store_url)) + raw_sqlite_files(h)
    assert secret_part(created.secret).encode() not in blob


# -- compared in constant time ---------------------------------------------------------------------------


def _record(text: str, **kw) -> ApiKeyRecord:
    key_id, env = keys_module.parse_key(text)
    return ApiKeyRecord(key_id, "acme", env, (), "p", "", hash_key(text), datetime.now(UTC), **kw)


def test_every_key_check_goes_through_compare_digest(monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = keys_module.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    good = mint_key("test", os.urandom).text
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    record = _record(good)
    assert check_record(record, "test", hash_key(good)).key_id == record.key_id
    for text, rec in ((wrong, record), (good, None)):  # a wrong secret, and an unknown key id: compared all the same
        with pytest.raises(Unauthenticated):
            check_record(rec, "test", hash_key(text))
    cache = KeyCache()
    cache.put(record.key_id, hash_key(good), keys_module.principal_of(record))
    assert cache.get(record.key_id, hash_key(good)) is not None and cache.get(record.key_id, hash_key(wrong)) is None
    assert len(calls) == 5 and all(len(a) == len(b) == 32 for a, b in calls)


def test_no_key_hash_or_secret_is_compared_with_an_operator() -> None:
    """Code-level: nowhere in the service is an API key's hash or text compared with ==, != or in
    (which stop at the first differing byte); the key checks go through hmac.compare_digest."""
    root = pathlib.Path(gavel.__file__).parent
    sensitive = re.compile(r"secret_hash|hash_key\(|key_text")
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if "v1" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(sensitive.search(ast.unparse(o))
                                                     for o in (node.left, *node.comparators)):
                if all(isinstance(o, ast.Constant) and o.value is None for o in node.comparators):
                    continue  # `x is None`
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == [], offenders
    for function in (keys_module.check_record, keys_module.KeyCache.get):
        assert "hmac.compare_digest(" in inspect.getsource(function)


# -- never logged ------------------------------------------------------------------------------------------


def cli(env, *args: str) -> str:
    out = subprocess.run([*GAVEL, *args], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def windows(secret: str, width: int = 10) -> list[str]:
    """Every `width`-character piece of a secret: a log line that shows a slice of it is caught too."""
    return [secret[i:i + width] for i in range(0, len(secret) - width + 1)]


def http(method: str, url: str, secret: str, body: dict | None = None, key: str | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={**bearer(secret, key),
                                                                        "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as err:
        err.read()
        return err.code


@pytest.mark.slow
def test_no_key_token_or_webhook_secret_reaches_the_logs_even_at_debug(workdir) -> None:
    env = env_for(workdir)
    cli(env, "tenants", "create", "Acme", "--id", "acme")
    admin_key = cli(env, "keys", "create", "--tenant", "acme", "--env", "test")
    agent_key = cli(env, "keys", "create", "--tenant", "acme", "--env", "test", "--roles", "agent")
    platform_key = cli(env, "keys", "create", "--platform")
    grpc_addr, http_port = f"127.0.0.1:{free_port()}", free_port()
    env.update(GAVEL_LOG_LEVEL="DEBUG", GAVEL_HTTP_ADDR=f"127.0.0.1:{http_port}", PYTHONASYNCIODEBUG="1")
    log_path = workdir / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*GAVEL, "serve", "--grpc-addr", grpc_addr], env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
    secrets = [admin_key, agent_key, platform_key]
    tokens = []
    try:
        wait_serving(grpc_addr, proc)
        base = f"http://127.0.0.1:{http_port}"
        with grpc.insecure_channel(grpc_addr) as ch:
            admin = admin_pb2_grpc.AdminServiceStub(ch)
            decisions = decision_pb2_grpc.DecisionServiceStub(ch)
            made = admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["agent"]), metadata=md_for(admin_key))
            replayable = admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["auditor"], idempotency_key="i"),
                                            metadata=md_for(admin_key))
            secrets += [made.secret, replayable.secret]
            # authentication that succeeds, fails in every way, and after a revocation
            d = decisions.Decide(request(), metadata=md_for(made.secret))
            tokens.append(d.decision_token)
            for bad in (made.secret[:-3] + "AAA", made.secret.replace("sk_test_", "sk_live_"), "sk_test_nope",
                        made.secret + "x", "Bearer " + made.secret):
                with pytest.raises(grpc.RpcError):
                    decisions.Decide(request(), metadata=md_for(bad))
                assert http("GET", f"{base}/v1/webhooks", bad) == 401
            decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token), metadata=md_for(agent_key))
            with pytest.raises(grpc.RpcError):  # replayed
                decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                       metadata=md_for(agent_key))
            forged = d.decision_token.rsplit(".", 1)[0] + "." + b64url_encode(bytes(64))
            with pytest.raises(grpc.RpcError):
                decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=forged), metadata=md_for(agent_key))
            second = decisions.Decide(request(), metadata=md_for(agent_key))
            tokens.append(second.decision_token)
            decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
                decision_id=second.decision_id, decision_token=second.decision_token,
                status=decision_pb2.EXECUTION_STATUS_SUCCEEDED, amount="100.00", currency="USD"),
                metadata=md_for(agent_key))
            third = decisions.Decide(request(), metadata=md_for(agent_key))
            tokens.append(third.decision_token)
            decisions.RevokeToken(decision_pb2.RevokeTokenRequest(token=third.decision_token),
                                  metadata=md_for(agent_key))
            admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=made.api_key.key_id),
                               metadata=md_for(platform_key))
            with pytest.raises(grpc.RpcError):
                decisions.Decide(request(), metadata=md_for(made.secret))
        # the REST shim: a webhook secret is made, keys are used, refused and revoked
        req = urllib.request.Request(f"{base}/v1/webhooks", method="POST", data=json.dumps(
            {"url": "https://93.184.216.34/hook", "events": ["approval.requested"]}).encode(),
            headers={**bearer(admin_key, "w1"), "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            hook = json.loads(r.read())
        secrets.append(hook["secret"])
        assert http("PUT", f"{base}/v1/webhooks/{hook['id']}", admin_key, {"enabled": False}) == 200
        assert http("GET", f"{base}/v1/webhooks", made.secret) == 401
        assert http("GET", f"{base}/v1/webhooks", agent_key) == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    log = log_path.read_text(errors="replace")
    assert " DEBUG " in log and "serving gRPC" in log  # the log did run at DEBUG
    for secret in secrets:
        shown = [w for w in windows(secret_part(secret)) if w in log]
        assert not shown, f"a piece of the key {secret[:24]}… is in the log: {shown[:3]}"
    for token in tokens:
        assert token not in log
        shown = [w for w in windows(token.rsplit(".", 1)[1]) if w in log]
        assert not shown, f"a piece of a token's signature is in the log: {shown[:3]}"


# -- revocation is effective at once -----------------------------------------------------------------------


async def test_revocation_is_effective_on_the_very_next_call_with_the_cache_warm(harness) -> None:
    h = harness
    rest = await start_rest(h)
    try:
        async with aiohttp.ClientSession() as http_session:
            for revoker in ("admin_test", "platform"):
                made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(), metadata=h.md())
                md = md_for(made.secret)
                for _ in range(5):  # warm: the key is in the cache now
                    await h.agents.ListAgents(agent_pb2.ListAgentsRequest(), metadata=md)
                    async with http_session.get(f"{rest.base}/v1/webhooks", headers=bearer(made.secret)) as r:
                        assert r.status == 200
                assert h.runtime.app.key_cache.get(made.api_key.key_id, hash_key(made.secret)) is not None
                await h.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=made.api_key.key_id),
                                           metadata=h.md(revoker))
                await expect_error(h.decisions.Decide(request(), metadata=md), OK.UNAUTHENTICATED, "UNAUTHENTICATED")
                async with http_session.get(f"{rest.base}/v1/webhooks", headers=bearer(made.secret)) as r:
                    assert r.status == 401 and (await r.json())["error"]["code"] == "UNAUTHENTICATED"
    finally:
        await rest.server.stop()


def test_an_authentication_racing_a_revocation_cannot_cache_the_revoked_key() -> None:
    """authenticate() reads the key's record, then caches it. If the revocation commits and evicts
    in between, the late put must not bring the revoked key back for a cache lifetime."""
    good = mint_key("test", os.urandom).text
    record = _record(good)
    cache = KeyCache()
    principal = check_record(record, "test", hash_key(good))  # read before the revocation committed
    cache.evict(record.key_id)  # the revocation
    cache.put(record.key_id, hash_key(good), principal)  # the racing authentication finishes
    assert cache.get(record.key_id, hash_key(good)) is None


async def test_another_replica_refuses_a_revoked_key_within_the_cache_lifetime(harness, tmp_path) -> None:
    """Two servers on one database. The replica that revokes refuses at once; another replica's
    cache may still hold the key for at most CACHE_SECONDS (1 s) — the documented bound."""
    h = harness
    clock = [0.0]
    other = build(h.runtime.settings)
    other.app.key_cache = KeyCache(clock=lambda: clock[0])
    server = GrpcServer(other)
    port = await server.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            agents = agent_pb2_grpc.AgentServiceStub(ch)
            made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(), metadata=h.md())
            md = md_for(made.secret)
            await agents.ListAgents(agent_pb2.ListAgentsRequest(), metadata=md)  # cached on the other replica
            await h.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=made.api_key.key_id), metadata=h.md())
            await expect_error(h.agents.ListAgents(agent_pb2.ListAgentsRequest(), metadata=md), OK.UNAUTHENTICATED,
                               "UNAUTHENTICATED")
            clock[0] += keys_module.CACHE_SECONDS + 0.001
            await expect_error(agents.ListAgents(agent_pb2.ListAgentsRequest(), metadata=md), OK.UNAUTHENTICATED,
                               "UNAUTHENTICATED")
    finally:
        await server.stop(0)


async def revoke(h, secret_key_id: str) -> None:
    await h.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=secret_key_id), metadata=h.md())


async def test_an_open_watch_approvals_stream_ends_when_its_key_is_revoked(harness) -> None:
    h = harness
    made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["finance_manager"]), metadata=h.md())
    first = await h.decisions.Decide(request(amount="600"), metadata=h.md("agent"))
    watch = approval_pb2_grpc.ApprovalServiceStub(h.channel).WatchApprovals(approval_pb2.WatchApprovalsRequest(),
                                                                             metadata=md_for(made.secret))
    try:
        got = await asyncio.wait_for(watch.read(), 10)
        assert got.approval.approval_id == first.approval.approval_id
        await revoke(h, made.api_key.key_id)
        after = await h.decisions.Decide(request(amount="700"), metadata=h.md("agent"))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while True:
                update = await asyncio.wait_for(watch.read(), 10)
                assert update.approval.approval_id != after.approval.approval_id, "a revoked key saw a new task"
        assert ended.value.code() == OK.UNAUTHENTICATED
    finally:
        watch.cancel()


async def test_an_open_wait_decision_stream_ends_when_its_key_is_revoked(harness) -> None:
    h = harness
    made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["agent"]), metadata=h.md())
    pending = await h.decisions.Decide(request(amount="600"), metadata=md_for(made.secret))
    wait = h.decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id=pending.decision_id),
                                    metadata=md_for(made.secret))
    try:
        assert (await asyncio.wait_for(wait.read(), 10)).decision_id == pending.decision_id
        await revoke(h, made.api_key.key_id)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(wait.read(), 10)
        assert ended.value.code() == OK.UNAUTHENTICATED
    finally:
        wait.cancel()


async def test_an_open_stream_events_stream_ends_when_its_key_is_revoked(harness) -> None:
    h = harness
    made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["auditor"]), metadata=h.md())
    stream = h.evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1), metadata=md_for(made.secret))
    try:
        size = (await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=h.md())).tree_size
        for _ in range(size):
            await asyncio.wait_for(stream.read(), 10)
        await revoke(h, made.api_key.key_id)
        after = await h.decisions.Decide(request(), metadata=h.md("agent"))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while True:
                event = await asyncio.wait_for(stream.read(), 10)
                assert after.decision_id not in event.payload_json, "a revoked key saw a later decision"
        assert ended.value.code() == OK.UNAUTHENTICATED
    finally:
        stream.cancel()


async def test_an_open_decide_stream_refuses_requests_after_its_key_is_revoked(harness) -> None:
    h = harness
    made = await h.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(roles=["agent"]), metadata=h.md())
    queue: asyncio.Queue = asyncio.Queue()

    async def requests():
        while True:
            item = await queue.get()
            if item is None:
                return
            yield item

    stream = h.decisions.DecideStream(requests(), metadata=md_for(made.secret))
    try:
        await queue.put(request(correlation_id="before"))
        assert (await asyncio.wait_for(stream.read(), 10)).correlation_id == "before"
        await revoke(h, made.api_key.key_id)
        await queue.put(request(correlation_id="after"))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            got = await asyncio.wait_for(stream.read(), 10)
            assert not got.decision_token, "a revoked key was given a decision token"
        assert ended.value.code() == OK.UNAUTHENTICATED
    finally:
        await queue.put(None)
        stream.cancel()


# -- signing keys on disk ----------------------------------------------------------------------------------


@pytest.fixture
def open_umask():
    """The most permissive umask: the modes below come from the code, not from the environment."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_signing_keys_are_owner_only_from_creation_through_rotation(tmp_path, open_umask) -> None:
    keys = FileSigningKeys(tmp_path / "data")
    first = keys.ensure()
    path = tmp_path / "data" / "signing-keys.json"
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    rotated = keys.rotate(datetime.now(UTC), timedelta(days=1))
    assert rotated.active.kid != first.active.kid
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    assert [p.name for p in path.parent.iterdir()] == ["signing-keys.json"]  # no temporary file left behind
    shared = FileSigningKeys(tmp_path / "unused", path=tmp_path / "secrets" / "keys.json")
    shared.ensure()
    assert (mode(tmp_path / "secrets" / "keys.json"), mode(tmp_path / "secrets")) == (0o600, 0o700)


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o644, 0o666])
def test_a_signing_key_file_readable_by_others_is_refused(tmp_path, loose) -> None:
    keys = FileSigningKeys(tmp_path / "data")
    keys.ensure()
    os.chmod(tmp_path / "data" / "signing-keys.json", loose)
    with pytest.raises(KeyFileError, match="readable by others"):
        FileSigningKeys(tmp_path / "data").ensure()


def test_serve_refuses_to_start_with_a_key_file_readable_by_others(workdir) -> None:
    env = env_for(workdir)
    cli(env, "keys", "rotate-signing")
    os.chmod(workdir / "data" / "signing-keys.json", 0o644)
    out = subprocess.run([*GAVEL, "serve", "--grpc-addr", f"127.0.0.1:{free_port()}"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "readable by others" in out.stderr and "Traceback" not in out.stderr


def test_writing_signing_keys_follows_no_planted_file(tmp_path, open_umask) -> None:
    """Someone who can write in the key file's directory plants symlinks (and a world-readable file)
    at the names a writer might use for its temporary file: the seed must land in none of them."""
    data = tmp_path / "data"
    keys = FileSigningKeys(data)
    keys.ensure()
    bait = tmp_path / "bait"
    bait.write_text("")
    os.chmod(bait, 0o666)
    path = data / "signing-keys.json"
    planted = [path.with_suffix(".tmp"), data / f".signing-keys.json.{os.getpid()}.tmp", data / "signing-keys.json.tmp"]
    for name in planted:
        name.symlink_to(bait)
    readable = data / f".{path.name}.{os.getpid()}.tmp.open"
    readable.write_text("")
    os.chmod(readable, 0o666)
    rotated = keys.rotate(datetime.now(UTC), timedelta(days=1))
    seed_text = b64url_encode(rotated.active.seed)
    assert bait.read_text() == "" and readable.read_text() == ""
    assert seed_text in path.read_text() and not path.is_symlink() and mode(path) == 0o600
    assert all(p.is_symlink() for p in planted)  # left alone, not written through
    # a fresh key file in a directory with a planted temporary name is written the same way
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    (fresh / f".signing-keys.json.{os.getpid()}.tmp").symlink_to(bait)
    made = FileSigningKeys(fresh).ensure()
    assert bait.read_text() == "" and b64url_encode(made.active.seed) in (fresh / "signing-keys.json").read_text()
