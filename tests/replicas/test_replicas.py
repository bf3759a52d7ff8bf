"""Several `gavel serve` replicas on one PostgreSQL ("past one machine").

Three real server processes share one database schema, one rules directory and one signing-keys
file (`GAVEL_SIGNING_KEYS_FILE`), each with its own data dir, gRPC port and HTTP port. They start at
the same moment on an empty schema, so they migrate concurrently. The tests then race them: what
must happen once (a token burn, an idempotent decision, an approval's resolution, a timeout, a
webhook attempt, a checkpoint) happens once; the ledger stays one verifiable chain; streams, bundle
activations and key rotations cross replicas within a second or two; and a replica killed with
SIGKILL loses nothing it acknowledged.

The database is GAVEL_TEST_DATABASE_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test;
the module is skipped when it does not answer. Each run uses a fresh schema, dropped at the end.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import nacl.exceptions
import nacl.signing
import pytest
import sqlalchemy as sa
from aiohttp import web
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gavel.v1 import (
    approval_pb2,
    approval_pb2_grpc,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    evidence_pb2,
    evidence_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
)
from tests.e2e.helpers import PAYMENT_RULES as RULES
from tests.e2e.helpers import error_info, request, token_parts
from tests.e2e.test_serve_process import GAVEL, free_port

OK = grpc.StatusCode
PG_URL = os.environ.get("GAVEL_TEST_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REPLICAS = 3
STREAM_DEADLINE = 1.0  # cross-replica streams and bundle activation: "within 1 s"
ROTATION_DEADLINE = 2.0  # a key rotation on the shared file reaches every replica "within ~2 s"


LIVE_BUNDLE = """package payments
scope action.type == "payment"
rule small allow "payment.small.v2" when action.amount <= 100
rule bigger deny "payment.too_big.v2" when action.amount > 100
"""

# name -> `gavel keys create` arguments (all of tenant acme)
KEYS = {
    "admin_test": ["--env", "test"],
    "admin_live": ["--env", "live"],
    "agent": ["--env", "test", "--roles", "agent", "--principal", "agent-runtime"],
    "auditor": ["--env", "test", "--roles", "auditor", "--principal", "auditor"],
    "alice": ["--env", "test", "--roles", "finance_manager", "--principal", "alice"],
    "bob": ["--env", "test", "--roles", "finance_manager", "--principal", "bob"],
}
SERVING_LINE = re.compile(r"serving gRPC on \S+:(\d+) and HTTP on \S+:(\d+)")
BAD_LOG_LINE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|exception was never retrieved")


# ---- the cluster -------------------------------------------------------------------------------


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Replica:
    name: str
    grpc_addr: str
    data_dir: Path
    log_path: Path
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    http_port: int = 0
    _log: object = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_serving(self, seconds: float = 90.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            m = SERVING_LINE.search(self.log())
            if m:
                try:
                    with grpc.insecure_channel(self.grpc_addr) as ch:
                        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        self.http_port = int(m.group(2))
                        return
                except grpc.RpcError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become SERVING in {seconds:g} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode if self.proc else None


@dataclass
class Cluster:
    url: str
    schema: str
    workdir: Path
    rules_dir: Path
    keys_file: Path
    engine: sa.Engine
    replicas: list[Replica] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    start_failures: list[str] = field(default_factory=list)

    def md(self, who: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[who]}"),)

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*GAVEL, *args], env=_clean_env(GAVEL_DATABASE_URL=self.url), capture_output=True,
                              text=True, timeout=timeout)


def _pg_or_skip() -> None:
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no PostgreSQL here"
        pytest.skip(f"replica tests need PostgreSQL at {PG_URL} (set GAVEL_TEST_DATABASE_URL): "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        engine.dispose()


def start_cluster(workdir: Path, n: int = REPLICAS) -> Cluster:
    """A fresh schema; n replicas and `gavel tenants create` started at the same moment on it (so they
    all migrate the empty schema concurrently); then the API keys; then wait until every replica serves."""
    schema = f"r_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    rules = workdir / "rules"
    rules.mkdir(parents=True)
    (rules / "payments.rules").write_text(RULES)
    shared = workdir / "shared"
    shared.mkdir(mode=0o700)
    cluster = Cluster(url, schema, workdir, rules, shared / "signing-keys.json", sa.create_engine(url))
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    for i, port in enumerate(sorted(ports)):
        name = "ABC"[i] if i < 3 else f"R{i}"
        data = workdir / f"replica-{name}"
        argv = [*GAVEL, "serve", "--grpc-addr", f"127.0.0.1:{port}", "--http-addr", "127.0.0.1:0",
                "--database-url", url, "--rules", str(rules), "--data-dir", str(data), "--webhook-allow-private"]
        env = _clean_env(GAVEL_SIGNING_KEYS_FILE=str(cluster.keys_file), GAVEL_CHECKPOINT_EVERY_SECONDS="2",
                         GAVEL_WEBHOOK_RETRY_BASE_SECONDS="0.2", GAVEL_DRAIN_SECONDS="2")
        cluster.replicas.append(Replica(name, f"127.0.0.1:{port}", data, workdir / f"replica-{name}.log", argv, env))
    tenant = subprocess.Popen([*GAVEL, "tenants", "create", "acme"], env=_clean_env(GAVEL_DATABASE_URL=url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for r in cluster.replicas:
        r.start()
    out, err = tenant.communicate(timeout=120)
    if tenant.returncode != 0 or out.strip() != "acme":
        cluster.start_failures.append(f"gavel tenants create acme: exit {tenant.returncode}\n{out}{err}")
        if tenant.returncode != 0:  # retry once the replicas have migrated
            for r in cluster.replicas:
                with contextlib.suppress(RuntimeError):
                    r.wait_serving()
            retry = cluster.cli("tenants", "create", "acme")
            assert retry.returncode == 0, retry.stderr
    makers = {who: subprocess.Popen([*GAVEL, "keys", "create", "--tenant", "acme", *args],
                                    env=_clean_env(GAVEL_DATABASE_URL=url), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for who, args in KEYS.items()}
    for who, proc in makers.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"gavel keys create ({who}): {err}"
        cluster.keys[who] = out.strip()
    for r in cluster.replicas:
        try:
            r.wait_serving()
        except RuntimeError as exc:  # record it (test_replicas_start_together_…) and try once more
            cluster.start_failures.append(str(exc))
            r.stop()
            r.start()
            r.wait_serving()
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    for r in cluster.replicas:
        if r.alive:
            r.proc.send_signal(signal.SIGTERM)
    for r in cluster.replicas:
        r.stop()
    cluster.engine.dispose()
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{cluster.schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _pg_or_skip()
    c = start_cluster(tmp_path_factory.mktemp("replicas"))
    try:
        yield c
    finally:
        stop_cluster(c)


class Conn:
    """Stubs on one replica."""

    def __init__(self, replica: Replica, channel: grpc.aio.Channel):
        self.name = replica.name
        self.replica = replica
        self.channel = channel
        self.decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        self.approvals = approval_pb2_grpc.ApprovalServiceStub(channel)
        self.evidence = evidence_pb2_grpc.EvidenceServiceStub(channel)
        self.policy = policy_pb2_grpc.PolicyServiceStub(channel)


@pytest.fixture
async def conns(cluster):
    out = [Conn(r, grpc.aio.insecure_channel(r.grpc_addr)) for r in cluster.replicas if r.alive]
    try:
        yield out
    finally:
        for c in out:
            await c.channel.close()


# ---- helpers -------------------------------------------------------------------------------------


def report(line: str) -> None:
    """Measurements, shown with `pytest -s`."""
    print(f"[replicas] {line}")


def failure(result) -> str:
    """"OK", or "CODE/REASON" for a gRPC error (anything else is re-raised)."""
    if not isinstance(result, BaseException):
        return "OK"
    if isinstance(result, grpc.aio.AioRpcError):
        try:
            reason, _ = error_info(result)
        except AssertionError:
            reason = f"(no ErrorInfo: {result.details()})"
        return f"{result.code().name}/{reason}"
    raise result


def tally(results) -> collections.Counter:
    return collections.Counter(failure(r) for r in results)


def odd(results, *expected: str) -> list[str]:
    """The details of results that are neither OK nor one of the `expected` failures (for messages)."""
    return [f"{failure(r)}: {r.details()}" for r in results
            if isinstance(r, grpc.aio.AioRpcError) and failure(r) not in expected]


def now_ts() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def kid(token: str) -> str:
    return token_parts(token)[0]["kid"]


async def jwks(c: Conn, cluster: Cluster) -> dict:
    reply = await c.evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(), metadata=cluster.md("auditor"))
    return {k["kid"]: k for k in json.loads(reply.jwks_json)["keys"]}


def verifies(token: str, keys: dict) -> bool:
    header, _, signed, signature = token_parts(token)
    key = keys.get(header["kid"])
    if key is None:
        return False
    x = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
    try:
        nacl.signing.VerifyKey(x).verify(signed, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


async def allow(c: Conn, cluster: Cluster, agent: str, amount: str = "10") -> decision_pb2.Decision:
    d = await c.decisions.Decide(request(amount=amount, agent=agent), metadata=cluster.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_ALLOW and d.decision_token, d
    return d


async def next_matching(call, predicate, deadline: float, what: str):
    """Read a stream until `predicate(message)`; fail at loop time `deadline`."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        try:
            msg = await asyncio.wait_for(call.read(), remaining)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None
        if msg is grpc.aio.EOF:
            raise AssertionError(f"the stream ended before {what}")
        if predicate(msg):
            return msg


def count_events(cluster: Cluster, type_: str, subject: str, env: str = "test") -> int:
    return cluster.scalar("SELECT count(*) FROM ledger_events WHERE tenant_id = 'acme' AND environment = :env "
                          "AND type = :type AND subject = :subject", env=env, type=type_, subject=subject)


def check_chain(cluster: Cluster, env: str = "test") -> int:
    """The stored ledger of acme/<env> is one chain: sequences 1..n, each event's prev_hash the hash of
    the one before, each hash SHA-256(prev_hash ‖ payload_json), and the head at n. Returns n."""
    rows = cluster.rows("SELECT sequence, prev_hash, hash, payload_json FROM ledger_events "
                        "WHERE tenant_id = 'acme' AND environment = :env ORDER BY sequence", env=env)
    sequences = [r.sequence for r in rows]
    assert sequences == list(range(1, len(rows) + 1)), (
        f"sequences are not contiguous: {len(rows)} events, gaps/duplicates near "
        f"{[s for i, s in enumerate(sequences, 1) if s != i][:5]}")
    prev = bytes(32)
    for r in rows:
        assert bytes(r.prev_hash) == prev, f"the chain forks at sequence {r.sequence}"
        assert bytes(r.hash) == hashlib.sha256(prev + r.payload_json.encode()).digest(), r.sequence
        prev = bytes(r.hash)
    head = cluster.rows("SELECT last_sequence, last_hash FROM ledger_heads WHERE tenant_id = 'acme' "
                        "AND environment = :env", env=env)
    assert [(h.last_sequence, bytes(h.last_hash)) for h in head] == [(len(rows), prev)]
    return len(rows)


async def verify_everywhere(conns: list[Conn], cluster: Cluster, size: int) -> None:
    replies = await asyncio.gather(*[c.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(),
                                                             metadata=cluster.md("auditor")) for c in conns])
    for c, v in zip(conns, replies):
        assert v.ok and v.checked >= size, (c.name, v)


# ---- start-up, migrations, one key set ------------------------------------------------------------


def test_replicas_start_together_and_migrate_once(cluster) -> None:
    assert cluster.start_failures == [], "\n\n".join(cluster.start_failures)
    assert all(r.alive for r in cluster.replicas)
    from alembic.script import ScriptDirectory

    from gavel.adapters.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(cluster.url)).get_current_head()
    assert [r.version_num for r in cluster.rows("SELECT version_num FROM alembic_version")] == [head]
    for r in cluster.replicas:
        assert "store: postgresql" in r.log(), r.name


async def test_every_replica_signs_with_the_one_shared_key_set(cluster, conns) -> None:
    assert cluster.keys_file.exists(), (
        f"GAVEL_SIGNING_KEYS_FILE={cluster.keys_file} was not created; the replicas signed with: "
        f"{sorted(str(p.relative_to(cluster.workdir)) for p in cluster.workdir.glob('replica-*/signing-keys.json'))}")
    sets = [await jwks(c, cluster) for c in conns]
    tokens = [(await allow(c, cluster, "kid-bot")).decision_token for c in conns]
    kids = {c.name: kid(t) for c, t in zip(conns, tokens)}
    assert len(set(kids.values())) == 1, f"replicas sign with different keys: {kids}"
    assert all(s.keys() == sets[0].keys() for s in sets), [sorted(s) for s in sets]
    for c, keys in zip(conns, sets):
        assert all(verifies(t, keys) for t in tokens), f"{c.name}'s JWKS does not verify every replica's tokens"


# ---- things that must happen once ---------------------------------------------------------------


async def test_a_token_burns_once_when_every_replica_consumes_it_at_once(cluster, conns) -> None:
    for i in range(6):
        d = await allow(conns[i % len(conns)], cluster, "race-bot")
        req = decision_pb2.ConsumeTokenRequest(token=d.decision_token)
        calls = [c.decisions.ConsumeToken(req, metadata=cluster.md("agent")) for c in conns for _ in range(3)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        got = tally(results)
        assert got == {"OK": 1, "ALREADY_EXISTS/DECISION_TOKEN_REUSED": len(calls) - 1}, (
            f"token issued on {conns[i % len(conns)].name}: {dict(got)}",
            odd(results, "ALREADY_EXISTS/DECISION_TOKEN_REUSED"))
        assert count_events(cluster, "token.consumed", d.decision_id) == 1


async def test_a_token_issued_on_one_replica_is_consumed_on_another(cluster, conns) -> None:
    a, b, c = conns[0], conns[1 % len(conns)], conns[2 % len(conns)]
    d = await allow(a, cluster, "hop-bot", "42.50")
    consumed = await b.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                              metadata=cluster.md("agent"))
    assert consumed.decision_id == d.decision_id
    again = await asyncio.gather(c.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                                          metadata=cluster.md("agent")), return_exceptions=True)
    assert tally(again) == {"ALREADY_EXISTS/DECISION_TOKEN_REUSED": 1}
    report = await c.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=d.decision_id, decision_token=d.decision_token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        executed_at=now_ts(), amount="42.50", currency="USD"), metadata=cluster.md("agent"))
    assert report.reconciliation.status == decision_pb2.RECONCILIATION_STATUS_MATCHED


async def test_an_idempotency_key_replays_or_conflicts_across_replicas(cluster, conns) -> None:
    agent = f"idem-{uuid.uuid4().hex[:6]}"
    # the same key and body at every replica at the same moment: one decision
    for k in range(8):
        req = request(amount=str(10 + k), agent=agent, idempotency_key=f"same-{agent}-{k}")
        results = await asyncio.gather(*[c.decisions.Decide(req, metadata=cluster.md("agent"))
                                         for c in conns for _ in range(2)], return_exceptions=True)
        assert tally(results) == {"OK": len(results)}, (dict(tally(results)), odd(results))
        assert len({d.decision_id for d in results}) == 1, [d.decision_id for d in results]
        assert len({d.decision_token for d in results}) == 1
    assert cluster.scalar("SELECT count(*) FROM decisions WHERE agent_id = :a", a=agent) == 8
    # the same key with different bodies at two replicas at the same moment: one wins, one conflicts
    for k in range(6):
        key = f"clash-{agent}-{k}"
        a, b = conns[k % len(conns)], conns[(k + 1) % len(conns)]
        first, second = request(amount="11", agent=agent, idempotency_key=key), request(
            amount="12", agent=agent, idempotency_key=key)
        results = await asyncio.gather(a.decisions.Decide(first, metadata=cluster.md("agent")),
                                       b.decisions.Decide(second, metadata=cluster.md("agent")),
                                       return_exceptions=True)
        assert tally(results) == {"OK": 1, "ALREADY_EXISTS/IDEMPOTENCY_CONFLICT": 1}, (
            a.name, b.name, tally(results), odd(results, "ALREADY_EXISTS/IDEMPOTENCY_CONFLICT"))
        winner, won_with = (results[0], first) if failure(results[0]) == "OK" else (results[1], second)
        lost_with = second if won_with is first else first
        third = conns[(k + 2) % len(conns)]
        replay = await third.decisions.Decide(won_with, metadata=cluster.md("agent"))
        assert replay.decision_id == winner.decision_id
        late = await asyncio.gather(third.decisions.Decide(lost_with, metadata=cluster.md("agent")),
                                    return_exceptions=True)
        assert tally(late) == {"ALREADY_EXISTS/IDEMPOTENCY_CONFLICT": 1}
    assert cluster.scalar("SELECT count(*) FROM decisions WHERE agent_id = :a", a=agent) == 8 + 6


async def test_fifty_resolves_spread_over_replicas_exactly_one_wins(cluster, conns) -> None:
    for round_ in range(2):
        d = await conns[round_ % len(conns)].decisions.Decide(request(amount="300", agent="resolve-bot"),
                                                              metadata=cluster.md("agent"))
        assert d.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL
        aid = d.approval.approval_id
        calls = [conns[i % len(conns)].approvals.ResolveApproval(approval_pb2.ResolveApprovalRequest(
            approval_id=aid, action=approval_pb2.RESOLUTION_ACTION_APPROVE if i % 3 else
            approval_pb2.RESOLUTION_ACTION_DENY), metadata=cluster.md("alice" if i % 2 else "bob"))
            for i in range(50)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        got = tally(results)
        assert got == {"OK": 1, "FAILED_PRECONDITION/INVALID_TRANSITION": 49}, (
            dict(got), odd(results, "FAILED_PRECONDITION/INVALID_TRANSITION"))
        assert count_events(cluster, "approval.resolved", d.decision_id) == 1


async def test_a_timeout_fires_once(cluster, conns) -> None:
    pending = [await conns[i % len(conns)].decisions.Decide(request(amount="10", agent="slow-bot",
                                                                     subtype="expiring"),
                                                             metadata=cluster.md("agent")) for i in range(6)]
    assert all(d.approval.approval_id for d in pending)

    async def final_state(c: Conn, decision_id: str) -> decision_pb2.Decision:
        last = None
        async for msg in c.decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id=decision_id),
                                                  metadata=cluster.md("agent")):
            last = msg
        return last

    ends = await asyncio.wait_for(asyncio.gather(*[final_state(conns[(i + 1) % len(conns)], d.decision_id)
                                                   for i, d in enumerate(pending)]), 10)
    assert [e.state for e in ends] == [decision_pb2.DECISION_STATE_EXPIRED] * len(pending)
    await asyncio.sleep(1.5)  # every replica's scheduler has had more than one tick since the due time
    counts = {d.decision_id: (count_events(cluster, "approval.expired", d.decision_id),
                              count_events(cluster, "approval.resolved", d.decision_id)) for d in pending}
    assert set(counts.values()) == {(1, 0)}, counts


async def test_webhook_deliveries_go_out_once_per_attempt(cluster, conns) -> None:
    seen: dict[str, list[dict]] = collections.defaultdict(list)

    async def hook(req: web.Request) -> web.Response:
        body = json.loads(await req.text())
        delivery = req.headers["X-Gavel-Delivery-Id"]
        seen[delivery].append(body)
        return web.Response(status=503 if len(seen[delivery]) == 1 else 204)  # every delivery needs 2 attempts

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    bases = [f"http://127.0.0.1:{c.replica.http_port}" for c in conns]
    auth = {"Authorization": f"Bearer {cluster.keys['admin_test']}"}
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(f"{bases[0]}/v1/webhooks", json={"url": url, "events": ["authorization.decided"]},
                                 headers={**auth, "Idempotency-Key": f"hook-{uuid.uuid4().hex}"}) as r:
                assert r.status == 201, await r.text()
                endpoint = (await r.json())["id"]
            decided = [await allow(conns[i % len(conns)], cluster, "hooked-bot") for i in range(12)]
            wanted = {d.decision_id for d in decided}

            def delivered() -> dict[str, list[str]]:
                by_decision = collections.defaultdict(list)
                for delivery, bodies in seen.items():
                    if len(bodies) >= 2 and bodies[0]["data"].get("decision_id") in wanted:
                        by_decision[bodies[0]["data"]["decision_id"]].append(delivery)
                return by_decision

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while set(delivered()) != wanted and loop.time() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # time for any duplicate attempt to arrive
            by_decision = delivered()
            assert set(by_decision) == wanted, f"{len(wanted - set(by_decision))} decisions never delivered"
            assert all(len(ids) == 1 for ids in by_decision.values()), "a decision got several deliveries"
            attempts = collections.Counter(len(seen[ids[0]]) for ids in by_decision.values())
            assert attempts == {2: len(wanted)}, f"requests per delivery (each should be 2: 503, then 204): {attempts}"
            async with http.get(f"{bases[-1]}/v1/webhooks/{endpoint}/deliveries", headers=auth) as r:
                rows = {x["delivery_id"]: x for x in (await r.json())["deliveries"]}
            for ids in by_decision.values():
                assert (rows[ids[0]]["status"], rows[ids[0]]["attempts"]) == ("delivered", 2), rows[ids[0]]
        finally:
            with contextlib.suppress(Exception):
                async with http.delete(f"{bases[0]}/v1/webhooks/{endpoint}", headers=auth):
                    pass
            await runner.cleanup()


# ---- one ledger, checkpoints made once -----------------------------------------------------------


async def test_the_ledger_stays_one_chain_under_load_from_every_replica(cluster, conns) -> None:
    per_replica, in_flight = 90, 16
    results: list = []

    async def worker(c: Conn, n: int, w: int) -> None:
        for i in range(n):
            amount = str(1 + (w * 7 + i) % 99)
            try:
                results.append(await c.decisions.Decide(request(amount=amount, agent=f"load-{c.name}-{w}"),
                                                        metadata=cluster.md("agent")))
            except grpc.aio.AioRpcError as err:
                results.append(err)

    await asyncio.gather(*[worker(c, per_replica // in_flight + 1, w) for c in conns for w in range(in_flight)])
    got = tally(results)
    assert got == {"OK": len(results)}, (dict(got), odd(results)[:5])
    assert len({d.evidence_event_id for d in results}) == len(results)
    size = check_chain(cluster)
    report(f"ledger load: {len(results)} decisions through {len(conns)} replicas; chain of {size} events")
    stored = {r.event_id for r in cluster.rows("SELECT event_id FROM ledger_events WHERE tenant_id = 'acme' "
                                                 "AND environment = 'test' AND type = 'decision.recorded'")}
    assert {d.evidence_event_id for d in results} <= stored
    await verify_everywhere(conns, cluster, size)


class Load:
    """Decisions from `per_replica` callers on every replica until stopped, alternating between the
    given keys (so between environments when they differ); records every failure."""

    def __init__(self, cluster: Cluster, conns: list[Conn], keys: tuple[str, ...], per_replica: int = 6):
        self.cluster, self.conns, self.keys, self.per_replica = cluster, conns, keys, per_replica
        self.ok = 0
        self.slowest = 0.0
        self.failures: collections.Counter = collections.Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def _caller(self, c: Conn, w: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            who = self.keys[(w + i) % len(self.keys)]
            started = time.monotonic()
            try:
                await c.decisions.Decide(request(amount=str(1 + i % 90), agent=f"bg-{c.name}-{w}"),
                                         metadata=self.cluster.md(who))
                self.ok += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
            except grpc.aio.AioRpcError as err:
                self.failures[f"Decide ({who}) {failure(err)}: {err.details()}"] += 1

    def _deadlocks(self) -> int:
        return self.cluster.scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")

    async def __aenter__(self) -> Load:
        self._deadlocks_before = self._deadlocks()
        self._tasks = [asyncio.create_task(self._caller(c, w)) for c in self.conns for w in range(self.per_replica)]
        await asyncio.sleep(0.3)  # every replica is busy
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def problems(self) -> collections.Counter:
        """Failed calls, and lock cycles between replicas that PostgreSQL had to break (counted by the
        server, so even one the store then retried successfully shows: each cost a caller at least
        deadlock_timeout). Backends report their statistics within a second of going idle."""
        out = collections.Counter(self.failures)
        time.sleep(1.5)
        self.cluster.scalar("SELECT pg_stat_clear_snapshot() IS NULL")
        cycles = self._deadlocks() - self._deadlocks_before
        if cycles:
            out[f"{cycles} deadlocks broken by PostgreSQL (slowest Decide {self.slowest:.2f} s)"] += 1
        return out


async def test_decisions_in_two_environments_from_every_replica_fail_no_call(cluster, conns) -> None:
    """Each replica's group-commit batch appends to both chains (acme/test and acme/live); two replicas
    must never wait on each other's chain heads (a deadlock fails the whole batch)."""
    async with Load(cluster, conns, ("agent", "admin_live"), per_replica=8) as load:
        await asyncio.sleep(3.0)
    report(f"two environments: {load.ok} decisions, slowest {load.slowest:.2f} s, failures {dict(load.failures)}")
    assert not load.problems(), (f"{load.ok} decisions in 3 s", dict(load.problems()))
    for env, who in (("test", "auditor"), ("live", "admin_live")):
        size = check_chain(cluster, env)
        replies = await asyncio.gather(*[c.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(),
                                                                 metadata=cluster.md(who)) for c in conns])
        assert all(v.ok and v.checked >= size for v in replies), (env, replies)


async def test_token_races_under_load_fail_no_call(cluster, conns) -> None:
    """The same token burned from every replica while every replica is also deciding: exactly one burn,
    every other call DECISION_TOKEN_REUSED, and no call of the load fails."""
    races = []
    async with Load(cluster, conns, ("agent",)) as load:
        for i in range(8):
            d = await allow(conns[i % len(conns)], cluster, "busy-race-bot")
            req = decision_pb2.ConsumeTokenRequest(token=d.decision_token)
            races.append(await asyncio.gather(*[c.decisions.ConsumeToken(req, metadata=cluster.md("agent"))
                                                for c in conns for _ in range(2)], return_exceptions=True))
    problems = load.problems()
    for results in races:
        problems.update(f"ConsumeToken {x}" for x in odd(results, "ALREADY_EXISTS/DECISION_TOKEN_REUSED"))
        if tally(results)["OK"] != 1:
            problems["a race without exactly one burn"] += 1
    report(f"token races under load: {len(races)} races, {load.ok} background decisions (slowest "
           f"{load.slowest:.2f} s), problems {dict(problems)}")
    assert not problems, dict(problems)


async def test_resolve_races_under_load_fail_no_call(cluster, conns) -> None:
    """Approve and deny of one task from every replica while every replica is also deciding: exactly one
    resolution, every other call INVALID_TRANSITION, and no call of the load fails."""
    races = []
    async with Load(cluster, conns, ("agent",)) as load:
        for i in range(12):
            d = await conns[i % len(conns)].decisions.Decide(request(amount="300", agent="busy-resolve-bot"),
                                                             metadata=cluster.md("agent"))
            races.append(await asyncio.gather(*[conns[j % len(conns)].approvals.ResolveApproval(
                approval_pb2.ResolveApprovalRequest(approval_id=d.approval.approval_id,
                                                    action=approval_pb2.RESOLUTION_ACTION_APPROVE if j % 2
                                                    else approval_pb2.RESOLUTION_ACTION_DENY),
                metadata=cluster.md("alice" if j % 3 else "bob")) for j in range(12)], return_exceptions=True))
    problems = load.problems()
    for results in races:
        problems.update(f"ResolveApproval {x}" for x in odd(results, "FAILED_PRECONDITION/INVALID_TRANSITION"))
        if tally(results)["OK"] != 1:
            problems["a race without exactly one resolution"] += 1
    report(f"resolve races under load: {len(races)} races, {load.ok} background decisions (slowest "
           f"{load.slowest:.2f} s), problems {dict(problems)}")
    assert not problems, dict(problems)


async def test_checkpoints_requested_on_every_replica_at_once_are_made_once(cluster, conns) -> None:
    for attempt in range(3):
        await asyncio.gather(*[allow(c, cluster, "checkpoint-bot") for c in conns])  # the tree grew
        cps = await asyncio.gather(*[c.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(),
                                                              metadata=cluster.md("auditor"))
                                     for c in conns for _ in range(3)], return_exceptions=True)
        assert tally(cps) == {"OK": len(cps)}, (dict(tally(cps)), odd(cps))
        sizes = {cp.tree_size for cp in cps}
        # replicas may answer for different sizes only if a decision landed in between; none did
        assert len(sizes) == 1, sizes
        distinct = {(cp.tree_size, cp.root_hash, cp.note, cp.signature, cp.key_id) for cp in cps}
        assert len(distinct) == 1, (
            f"attempt {attempt}: {len(distinct)} different signed checkpoints for tree size {sizes}: "
            f"{sorted({cp.note.splitlines()[-1][:60] for cp in cps})}")
        (size,) = sizes
        stored = cluster.rows("SELECT note, signature FROM ledger_checkpoints WHERE tenant_id = 'acme' "
                              "AND environment = 'test' AND tree_size = :s", s=size)
        assert [(r.note, bytes(r.signature)) for r in stored] == [(cps[0].note, cps[0].signature)]


# ---- streams, bundles and keys cross replicas ----------------------------------------------------


async def test_a_reviewer_on_one_replica_sees_a_task_created_and_resolved_on_another(cluster, conns) -> None:
    loop = asyncio.get_running_loop()
    lags = []
    for i in range(len(conns)):
        watcher, decider, resolver = conns[i], conns[(i + 1) % len(conns)], conns[(i + 2) % len(conns)]
        watch = watcher.approvals.WatchApprovals(approval_pb2.WatchApprovalsRequest(), metadata=cluster.md("alice"))
        try:
            await asyncio.sleep(0.5)  # connected; the snapshot of older pending tasks is on its way
            d = await decider.decisions.Decide(request(amount="250", agent="watched-bot"),
                                               metadata=cluster.md("agent"))
            t0 = loop.time()
            aid = d.approval.approval_id
            await next_matching(watch, lambda u, aid=aid: u.approval.approval_id == aid, t0 + STREAM_DEADLINE,
                                f"task {aid} (decided on {decider.name}) on {watcher.name}'s WatchApprovals")
            lags.append(loop.time() - t0)
            await resolver.approvals.ResolveApproval(approval_pb2.ResolveApprovalRequest(
                approval_id=aid, action=approval_pb2.RESOLUTION_ACTION_APPROVE), metadata=cluster.md("bob"))
            t1 = loop.time()
            await next_matching(watch, lambda u, aid=aid: u.approval.approval_id == aid
                                and u.approval.status == approval_pb2.APPROVAL_STATUS_APPROVED,
                                t1 + STREAM_DEADLINE, f"approval of {aid} (on {resolver.name}) on {watcher.name}")
            lags.append(loop.time() - t1)
        finally:
            watch.cancel()
    report(f"WatchApprovals across replicas: lag max {max(lags):.3f} s, mean {sum(lags) / len(lags):.3f} s")
    assert max(lags) <= STREAM_DEADLINE


async def test_an_agent_waiting_on_one_replica_sees_an_approval_resolved_on_another(cluster, conns) -> None:
    loop = asyncio.get_running_loop()
    for i in range(len(conns)):
        waiter, resolver, consumer = conns[i], conns[(i + 1) % len(conns)], conns[(i + 2) % len(conns)]
        d = await waiter.decisions.Decide(request(amount="400", agent="waiting-bot"), metadata=cluster.md("agent"))
        wait = waiter.decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id=d.decision_id),
                                             metadata=cluster.md("agent"))
        try:
            first = await asyncio.wait_for(wait.read(), 5)
            assert first.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL
            await resolver.approvals.ResolveApproval(approval_pb2.ResolveApprovalRequest(
                approval_id=d.approval.approval_id, action=approval_pb2.RESOLUTION_ACTION_APPROVE),
                metadata=cluster.md("alice"))
            t0 = loop.time()
            final = await next_matching(wait, lambda m: m.state != decision_pb2.DECISION_STATE_PENDING_APPROVAL,
                                        t0 + STREAM_DEADLINE,
                                        f"the verdict on {waiter.name}'s WaitDecision (resolved on {resolver.name})")
        finally:
            wait.cancel()
        report(f"WaitDecision on {waiter.name}, resolved on {resolver.name}: {loop.time() - t0:.3f} s")
        assert final.state == decision_pb2.DECISION_STATE_APPROVED and final.decision_token
        await consumer.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=final.decision_token),
                                              metadata=cluster.md("agent"))


async def test_a_bundle_published_on_one_replica_is_active_on_all_within_a_second(cluster, conns) -> None:
    from datetime import UTC, datetime

    from gavel.bundles import build_archive

    src = cluster.workdir / "live-bundle"
    src.mkdir()
    (src / "payments.rules").write_text(LIVE_BUNDLE)
    blob = build_archive(src, version="live-v2", author="replica tests", now=datetime.now(UTC))
    loop = asyncio.get_running_loop()
    publisher, others = conns[0], conns[1:]
    for c in others:  # warm: each replica has decided live with the rules directory
        d = await c.decisions.Decide(request(amount="50", agent="live-bot"), metadata=cluster.md("admin_live"))
        assert d.reason_code == "payment.small"
    published = await publisher.policy.PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=blob, idempotency_key=f"publish-{uuid.uuid4().hex}"), metadata=cluster.md("admin_live"))
    t0 = loop.time()
    waiting = {c.name: c for c in others}
    lag = {}
    while waiting and loop.time() - t0 <= STREAM_DEADLINE:
        for name, c in list(waiting.items()):
            active = await c.policy.GetActiveBundle(policy_pb2.GetActiveBundleRequest(),
                                                    metadata=cluster.md("admin_live"))
            d = await c.decisions.Decide(request(amount="50", agent="live-bot"), metadata=cluster.md("admin_live"))
            if active.bundle_hash == published.bundle_hash and d.policy.bundle_hash == published.bundle_hash:
                assert d.reason_code == "payment.small.v2"
                lag[name] = loop.time() - t0
                del waiting[name]
        await asyncio.sleep(0.05)
    report(f"bundle published on {publisher.name} active elsewhere after: {lag}")
    assert not waiting, f"still deciding with the old bundle after {STREAM_DEADLINE} s: {sorted(waiting)} ({lag})"
    # the test environment keeps the rules directory
    d = await conns[-1].decisions.Decide(request(amount="50", agent="live-bot"), metadata=cluster.md("agent"))
    assert d.reason_code == "payment.small"


async def test_a_signing_key_rotation_reaches_every_replica(cluster, conns) -> None:
    old = [await allow(c, cluster, "rotating-bot") for c in conns]
    old_kids = {kid(d.decision_token) for d in old}
    out = await asyncio.to_thread(cluster.cli, "keys", "rotate-signing", "--signing-keys-file", str(cluster.keys_file))
    assert out.returncode == 0, out.stderr
    new_kid = re.search(r"new signing key (\S+);", out.stdout).group(1)
    assert new_kid not in old_kids
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    lag: dict[str, float] = {}
    seen: dict[str, str] = {}
    while len(lag) < len(conns) and loop.time() - t0 <= ROTATION_DEADLINE:
        for c in conns:
            if c.name not in lag:
                seen[c.name] = kid((await allow(c, cluster, "rotating-bot")).decision_token)
                if seen[c.name] == new_kid:
                    lag[c.name] = loop.time() - t0
        await asyncio.sleep(0.1)
    report(f"new signing key {new_kid} in use after: {lag}")
    assert len(lag) == len(conns), f"after {ROTATION_DEADLINE} s, kids are {seen} (new {new_kid})"
    for c in conns:
        keys = await jwks(c, cluster)
        assert new_kid in keys and old_kids <= keys.keys(), (c.name, sorted(keys))
        assert all(verifies(d.decision_token, keys) for d in old)
    # old tokens are still consumable, on a replica other than the one that issued them
    for i, d in enumerate(old):
        await conns[(i + 1) % len(conns)].decisions.ConsumeToken(
            decision_pb2.ConsumeTokenRequest(token=d.decision_token), metadata=cluster.md("agent"))
    fresh = await allow(conns[-1], cluster, "rotating-bot")
    assert kid(fresh.decision_token) == new_kid
    await conns[0].decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=fresh.decision_token),
                                          metadata=cluster.md("agent"))


def test_no_replica_logged_an_error(cluster) -> None:
    bad = {r.name: [line for line in r.log().splitlines() if BAD_LOG_LINE.search(line)][:8]
           for r in cluster.replicas}
    assert not any(bad.values()), json.dumps(bad, indent=1)


# ---- a replica dies under load --------------------------------------------------------------------


async def test_a_replica_killed_under_load_loses_nothing_it_acknowledged(cluster, conns) -> None:
    assert len(conns) >= 2
    victim, survivors = conns[-1], conns[:-1]
    loop = asyncio.get_running_loop()
    acked: list[tuple[str, decision_pb2.Decision, float]] = []
    errors: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    killed_at: list[float] = []
    stop_at = loop.time() + 3.5

    async def worker(c: Conn, w: int) -> None:
        i = 0
        while loop.time() < stop_at:
            i += 1
            try:
                d = await c.decisions.Decide(request(amount=str(1 + i % 90), agent=f"doomed-{c.name}-{w}"),
                                             metadata=cluster.md("agent"), timeout=5)
                acked.append((c.name, d, loop.time()))
            except grpc.aio.AioRpcError as err:
                errors[c.name][failure(err)] += 1
                if c is victim and killed_at:
                    return  # the dead replica's clients give up
                await asyncio.sleep(0.05)

    async def killer() -> None:
        await asyncio.sleep(1.2)
        await asyncio.to_thread(victim.replica.kill)
        killed_at.append(loop.time())

    await asyncio.gather(killer(), *[worker(c, w) for c in conns for w in range(8)])
    assert killed_at and not victim.replica.alive
    report(f"kill {victim.name}: acknowledged {collections.Counter(n for n, _, _ in acked)}, "
           f"errors {({k: dict(v) for k, v in errors.items()})}")
    after = collections.Counter(name for name, _, t in acked if t > killed_at[0])
    before_victim = [d for name, d, t in acked if name == victim.name]
    assert before_victim, "the victim acknowledged nothing before it was killed"
    for s in survivors:
        assert after[s.name] >= 20, f"{s.name} decided only {after[s.name]} after the kill ({dict(after)})"
        assert not errors[s.name], f"{s.name} failed calls: {dict(errors[s.name])}"
    # every acknowledged decision, also the victim's, is readable through another (living) replica
    sem = asyncio.Semaphore(32)

    async def read_back(name: str, d: decision_pb2.Decision) -> None:
        via = next((s for s in survivors if s.name != name), survivors[0])
        async with sem:
            got = await via.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                                  metadata=cluster.md("agent"))
        assert got.decision_id == d.decision_id and got.evidence_event_id == d.evidence_event_id

    await asyncio.gather(*[read_back(name, d) for name, d, _ in acked])
    size = check_chain(cluster)
    stored = {r.event_id for r in cluster.rows("SELECT event_id FROM ledger_events WHERE tenant_id = 'acme' "
                                                 "AND environment = 'test' AND type = 'decision.recorded'")}
    missing = [d.decision_id for _, d, _ in acked if d.evidence_event_id not in stored]
    assert not missing, f"{len(missing)} acknowledged decisions have no ledger event"
    await verify_everywhere(survivors, cluster, size)
