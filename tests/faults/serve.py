"""Real `gavel serve` processes for the fault tests, and what the tests observe of them.

A `Serve` is one server process on a fixed gRPC port (so a restart answers at the same address)
and an ephemeral HTTP port read from its log. Its store is a SQLite file in the work directory,
or any `--database-url`. Keys are created in-process against the same store before the first
start. `rss_bytes`, `open_fds` and `threads` read /proc, so a test can watch the process from
outside without any introspection hook in the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.helpers import PAYMENT_RULES as RULES

GAVEL = [sys.executable, "-m", "gavel.cli"]
SERVING_LINE = re.compile(r"serving gRPC on \S+:(\d+) and HTTP on \S+:(\d+)")
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
SHARED_PG = os.environ.get("GAVEL_TEST_DATABASE_URL", "")


# name -> (environment, roles, principal); all of tenant `acme`
KEYS = {
    "admin": ("test", [], "acme-owner"),
    "agent": ("test", ["agent"], "agent-runtime"),
    "auditor": ("test", ["auditor"], "auditor"),
    "alice": ("test", ["finance_manager"], "alice"),
    "agent_live": ("live", ["agent"], "agent-runtime"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def md(keys: dict[str, str], who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {keys[who]}"),)


@dataclass
class Serve:
    """One `gavel serve` process; `start()` again after `kill()` restarts it on the same ports."""

    workdir: Path
    database_url: str = ""
    env_extra: dict[str, str] = field(default_factory=dict)
    wrapper: list[str] = field(default_factory=list)  # e.g. setpriv …, run before the interpreter
    grpc_port: int = field(default_factory=free_port)
    http_port: int = 0
    keys: dict[str, str] = field(default_factory=dict)  # set by provision()
    proc: subprocess.Popen | None = None
    starts: int = 0
    _log: object = None

    def __post_init__(self) -> None:
        rules = self.workdir / "rules"
        if not rules.exists():
            rules.mkdir(parents=True)
            (rules / "payments.rules").write_text(RULES)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "serve.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
        env.update(PYTHONUNBUFFERED="1", GAVEL_DATA_DIR=str(self.data_dir), GAVEL_RULES=str(self.workdir / "rules"),
                   GAVEL_GRPC_ADDR=self.addr, GAVEL_HTTP_ADDR="127.0.0.1:0", GAVEL_RATE_LIMIT_PER_MINUTE="0",
                   GAVEL_WEBHOOK_ALLOW_PRIVATE="1", GAVEL_DRAIN_SECONDS="1")
        if self.database_url:
            env["GAVEL_DATABASE_URL"] = self.database_url
        env.update(self.env_extra)
        return env

    async def provision(self) -> dict[str, str]:
        """Create tenant `acme` and the KEYS against this server's store (migrating it first)."""
        from gavel.app import admin
        from gavel.bootstrap import open_store
        from gavel.config import Settings

        settings = Settings(data_dir=self.data_dir, rules=self.workdir / "rules", database_url=self.database_url)
        store = await asyncio.to_thread(open_store, settings)
        now = datetime.now(UTC)

        def unit(uow) -> dict[str, str]:
            admin.create_tenant(uow, "acme", "acme", now)
            return {name: admin.create_key(uow, None, tenant="acme", environment=environment, roles=roles,
                                           principal=principal, description="", now=now,
                                           random_bytes=os.urandom)["secret"]
                    for name, (environment, roles, principal) in KEYS.items()}

        try:
            self.keys = await asyncio.to_thread(store.run_sync, unit)
            return self.keys
        finally:
            await store.close()

    def start(self) -> None:
        assert not self.alive
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in kill() / stop()
        self._log.write(f"\n--- start {self.starts + 1} ---\n".encode())
        self._log.flush()
        self._log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen([*self.wrapper, *GAVEL, "serve"], env=self.env(), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    async def wait_serving(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"gavel serve exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            m = SERVING_LINE.search(self.log()[self._log_offset:] if self._log_offset else self.log())
            if m and await self.health() == SERVING:
                self.http_port = int(m.group(2))
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"gavel serve did not become SERVING in {seconds:g} s:\n{self.log()[-3000:]}")

    def wait_serving_sync(self, seconds: float = 60.0) -> None:
        """`wait_serving` outside an event loop (module-scoped fixtures)."""
        asyncio.run(self.wait_serving(seconds))

    async def health(self, timeout: float = 2.0) -> int | None:
        """The overall health status, or None when the server does not answer."""
        try:
            async with grpc.aio.insecure_channel(self.addr) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                         timeout=timeout)
                return reply.status
        except grpc.aio.AioRpcError:
            return None

    async def wait_health(self, status: int, seconds: float = 20.0) -> float:
        """Poll until the health service reports `status`; returns how long that took."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if await self.health() == status:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise AssertionError(f"health never became {health_pb2.HealthCheckResponse.ServingStatus.Name(status)} "
                             f"in {seconds:g} s:\n{self.log()[-2000:]}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no drain, no close, nothing flushed by the server itself."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def stop(self) -> int | None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()
        return self.proc.returncode if self.proc else None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- the process as the kernel sees it -------------------------------------------------------

    def _status(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {name} in /proc/{self.pid}/status")

    def rss_bytes(self) -> int:
        return self._status("VmRSS") * 1024

    def threads(self) -> int:
        return self._status("Threads")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@contextlib.contextmanager
def postgres_schema():
    """A fresh schema on the shared PostgreSQL (GAVEL_TEST_DATABASE_URL), dropped afterwards."""
    if not SHARED_PG:
        pytest.skip("needs GAVEL_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    schema = f"t_faults_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(SHARED_PG, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in SHARED_PG else "?"
        yield f"{SHARED_PG}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def drop_dac_override() -> list[str]:
    """A command prefix that runs a program as root *without* the capability to override file
    permissions, so that `chmod 0444` binds it like any other user. Empty when not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux `setpriv`: root ignores a read-only database file")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps, "--"]


@dataclass
class Delivered:
    delivery_id: str
    kind: str
    decision_id: str
    answered: int  # the HTTP status the receiver gave
    signature_ok: bool


@dataclass
class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that checks each delivery's signature and records it; it
    answers `status` (set it to 503 to make Gavel retry later)."""

    secret: str = ""
    status: int = 200
    seen: list[Delivered] = field(default_factory=list)
    port: int = 0
    _runner: object = None

    async def _handle(self, request):
        from aiohttp import web

        from gavel.adapters.rest.delivery import verify_signature

        body = await request.read()
        ok = verify_signature(self.secret, body, request.headers.get("X-Gavel-Timestamp", ""),
                              request.headers.get("X-Gavel-Signature", ""), time.time())
        doc = json.loads(body)
        self.seen.append(Delivered(request.headers.get("X-Gavel-Delivery-Id", ""), doc.get("type", ""),
                                   doc.get("data", {}).get("decision_id", ""), self.status, ok))
        return web.Response(status=self.status)

    async def start(self) -> WebhookReceiver:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def subscribe(self, server: Serve, events: list[str]) -> str:
        """Create a webhook for this receiver through the server's REST shim; its id."""
        import aiohttp

        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{server.http_port}/v1/webhooks", json={"url": self.url, "events": events},
                headers={"Authorization": f"Bearer {server.keys['admin']}",
                         "Idempotency-Key": uuid.uuid4().hex}) as reply:
            body = await reply.json()
            assert reply.status == 201, body
        self.secret = body["secret"]
        return body["id"]

    def delivered(self, kind: str) -> dict[str, set[str]]:
        """decision id → delivery ids answered 2xx, for deliveries of `kind`."""
        out: dict[str, set[str]] = {}
        for d in self.seen:
            if d.kind == kind and 200 <= d.answered < 300:
                out.setdefault(d.decision_id, set()).add(d.delivery_id)
        return out
