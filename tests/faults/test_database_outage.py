"""The database goes away under a running `gavel serve` with decisions in flight, then comes back.

- SQLite: the data file is made read-only (chmod 0444). The server runs as root here, and root
  ignores file modes, so it is started without the capabilities that override them (setpriv).
- PostgreSQL: a private cluster of the test's own (initdb + pg_ctl on a free port, as the
  `postgres` user when the test runs as root), stopped with `pg_ctl stop -m immediate` — a crash,
  no goodbye to clients — and started again. The shared server at GAVEL_TEST_DATABASE_URL is never
  touched. Where no private cluster can be started, a TCP proxy in front of the shared server is
  cut and restored instead (the test says so in its output).

Either way: while the database is gone `Decide` answers UNAVAILABLE / STORE_UNAVAILABLE and never
an allow, the gRPC health service turns NOT_SERVING (and /healthz 503), and when the database is
back both come back by themselves — same process, same client channel, no restart. Every allow a
client was given, before, during or after, is in the store and the ledger verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import pytest

from gavel.v1 import common_pb2, decision_pb2, decision_pb2_grpc, evidence_pb2, evidence_pb2_grpc
from tests.e2e.helpers import error_info, expect_error, request
from tests.faults.serve import NOT_SERVING, SERVING, SHARED_PG, Serve, drop_dac_override, free_port, md

OK = grpc.StatusCode
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DETECT_SECONDS = 20.0  # the health probe runs every 2 s and a probe gives up after a couple of seconds


@dataclass
class Load:
    """Workers deciding without pause; every answer and every refusal is kept, with its time."""

    decisions: decision_pb2_grpc.DecisionServiceStub
    metadata: tuple
    workers: int = 4
    allowed: list[tuple[float, decision_pb2.Decision]] = field(default_factory=list)
    refused: list[tuple[float, grpc.StatusCode, str]] = field(default_factory=list)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def start(self) -> Load:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.workers)]
        return self

    async def _run(self) -> None:
        while True:
            try:
                d = await self.decisions.Decide(request(amount="10"), metadata=self.metadata, timeout=10)
                self.allowed.append((time.monotonic(), d))
            except grpc.aio.AioRpcError as err:
                reason = error_info(err)[0] if err.trailing_metadata() else ""
                self.refused.append((time.monotonic(), err.code(), reason))
                await asyncio.sleep(0.05)

    async def answers(self, count: int, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        target = len(self.allowed) + count
        while len(self.allowed) < target:
            assert time.monotonic() < deadline, f"the load got {len(self.allowed)} answers, not {target}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def healthz(server: Serve) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{server.http_port}/healthz") as r:
        return r.status, await r.json()


async def outage_then_recovery(server: Serve, take_away, bring_back) -> None:
    """Run the load, take the database away, check the refusals and the health, bring it back,
    check the recovery, then that every allow given is in the store."""
    keys = server.keys
    pid = server.pid
    async with grpc.aio.insecure_channel(server.addr) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        load = Load(decisions, md(keys, "agent")).start()
        try:
            await load.answers(30)
            going_at = time.monotonic()
            await take_away()
            took = await server.wait_health(NOT_SERVING, DETECT_SECONDS)
            assert (await healthz(server))[0] == 503
            # once NOT_SERVING, a decision is refused — never allowed
            await expect_error(decisions.Decide(request(amount="10"), metadata=md(keys, "agent"), timeout=10),
                               OK.UNAVAILABLE, "STORE_UNAVAILABLE")
            unhealthy_at = time.monotonic()
            await asyncio.sleep(1.5)  # the load keeps knocking on a server without a database
            allowed_while_unhealthy = [d for t, d in load.allowed if t > unhealthy_at]
            refused_while_unhealthy = [r for r in load.refused if r[0] > unhealthy_at]
            await bring_back()
            back_at = time.monotonic()
            await server.wait_health(SERVING, DETECT_SECONDS)
            status, report = await healthz(server)
            assert status == 200 and report["store"] == "ok", report
            await load.answers(30)  # the same channel and workers, served again
        finally:
            await load.stop()
        assert server.alive and server.pid == pid and server.starts == 1  # resumed by itself

        assert not allowed_while_unhealthy, "an allow was answered while the store was unreachable"
        assert len(refused_while_unhealthy) >= 4  # the load did run into the outage
        assert {(code, reason) for _, code, reason in load.refused} == {(OK.UNAVAILABLE, "STORE_UNAVAILABLE")}
        assert not [r for r in load.refused if r[0] < going_at or r[0] > back_at + DETECT_SECONDS]
        print(f"NOT_SERVING {took:.1f} s after the database went away; refused {len(load.refused)} "
              f"decisions meanwhile; {len(load.allowed)} allowed in all")

        # every allow given — before, during (in flight as the database went) and after — is durable
        for _, d in load.allowed:
            assert d.outcome == common_pb2.OUTCOME_ALLOW and d.decision_token
            got = await decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                              metadata=md(keys, "agent"))
            assert got.evidence_event_id == d.evidence_event_id
        verdict = await evidence_pb2_grpc.EvidenceServiceStub(channel).VerifyLedger(
            evidence_pb2.VerifyLedgerRequest(), metadata=md(keys, "auditor"))
        assert verdict.ok and verdict.checked >= len(load.allowed), verdict


# -- SQLite ----------------------------------------------------------------------------------------


async def test_a_read_only_sqlite_file_is_unavailable_and_service_resumes_by_itself(serve) -> None:
    server: Serve = serve(wrapper=drop_dac_override())
    await server.provision()
    server.start()
    await server.wait_serving()
    db = server.data_dir / "gavel.db"
    # the file must bind the server: as it runs, it may not write a file without write permission
    probe = subprocess.run([*server.wrapper, "sh", "-c", f"test -w {db} && chmod 0444 {db} && test -w {db}"])
    os.chmod(db, 0o644)
    assert probe.returncode != 0, "the server's process could still write a read-only file"

    async def take_away() -> None:
        os.chmod(db, 0o444)

    async def bring_back() -> None:
        os.chmod(db, 0o644)

    try:
        await outage_then_recovery(server, take_away, bring_back)
    finally:
        os.chmod(db, 0o644)


# -- PostgreSQL ------------------------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL 15 cluster in a temporary directory, on a free port, owned by the `postgres`
    OS user when the test runs as root (initdb refuses root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gavel-faults-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root and no `runuser` to become `postgres`")
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = [runuser, "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        done = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])}: {done.stdout}{done.stderr}")

    def init(self) -> PrivatePostgres:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--no-locale")
        return self

    def start(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def crash(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.crash()
        shutil.rmtree(self.root, ignore_errors=True)


class CuttableProxy:
    """A TCP proxy to the shared PostgreSQL that can be cut (every connection dropped, new ones
    refused) and restored — the fallback where no private cluster can be started."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for task in (asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))):
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()

    async def restore(self) -> None:
        await self.start()


def _private_postgres_or_reason() -> tuple[PrivatePostgres | None, str]:
    if not (PG_BIN / "initdb").exists():
        return None, f"no {PG_BIN / 'initdb'}"
    cluster = None
    try:
        cluster = PrivatePostgres()
        cluster.init()
        cluster.start()
        return cluster, ""
    except (RuntimeError, OSError, LookupError, subprocess.TimeoutExpired) as exc:
        if cluster is not None:
            cluster.remove()
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def test_postgresql_crashed_mid_load_is_unavailable_and_service_resumes_by_itself(serve) -> None:
    cluster, why_not = await asyncio.to_thread(_private_postgres_or_reason)
    with contextlib.ExitStack() as cleanup:
        if cluster is not None:
            cleanup.callback(cluster.remove)
            url = cluster.url

            async def take_away() -> None:
                await asyncio.to_thread(cluster.crash)

            async def bring_back() -> None:
                await asyncio.to_thread(cluster.start)
        else:
            if not SHARED_PG:
                pytest.skip(f"no private PostgreSQL ({why_not}) and no GAVEL_TEST_DATABASE_URL for a proxy")
            print(f"no private PostgreSQL cluster ({why_not}): cutting a TCP proxy to the shared server instead")
            from sqlalchemy.engine import make_url

            from tests.faults.serve import postgres_schema

            shared = make_url(SHARED_PG)
            proxy = CuttableProxy(shared.host or "127.0.0.1", shared.port or 5432)
            await proxy.start()
            schema_url = cleanup.enter_context(postgres_schema())
            url = make_url(schema_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            take_away, bring_back = proxy.cut, proxy.restore
        server: Serve = serve(database_url=url)
        await server.provision()
        server.start()
        await server.wait_serving()
        try:
            await outage_then_recovery(server, take_away, bring_back)
        finally:
            server.stop()  # before the database goes for good
            if cluster is None:
                await proxy.cut()
