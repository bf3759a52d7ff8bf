"""A real `gavel serve` process for the bad-input tests, and what they need to talk to it.

The server runs as a subprocess (its own event loop, its own stderr log file), so a crash, a
hang or a traceback caused by bad input shows up exactly as it would in production. The store
is a SQLite file, or a fresh schema of GAVEL_TEST_DATABASE_URL (PostgreSQL) when that is set.

Keys are seeded straight into the store before the server starts:

| key | tenant / env | used by |
|---|---|---|
| `admin` | acme / test | Decide and approval fuzzing (decisions that need approval) |
| `finance` | acme / test, role finance_manager, principal alice | resolving approvals |
| `live` | acme / live | the every-method fuzz (agents it pauses cannot disturb the test env) |
| `hooks` | hooks / test | webhook fuzzing (no decision ever happens there, so nothing is delivered) |
| `platform` | platform operator | AdminService |
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

RULES = """package payments
scope action.type in {"payment", "refund"}
let fiat = {"USD", "EUR", "GBP"}
risk 40 "large" when action.amount > 1000

rule currency deny "currency.unsupported" when action.currency not in fiat
rule small allow "payment.small" when action.amount <= 500
rule medium require_approval "payment.needs_approval"
  when { action.amount > 500
    action.amount <= 10000 }
  route { role: "finance_manager", approvals: 1, timeout: 1h, on_timeout: deny, escalate_to: "cfo" }
rule large deny "payment.too_large" when action.amount > 10000
"""

LISTENING = re.compile(r"serving gRPC on (\S+):(\d+) and HTTP on (\S+):(\d+)")
# What a crash or an unexpected exception leaves in the log.
CRASH_MARKERS = ("Traceback", "unexpected error", "Unexpected [")
START_SECONDS = 60.0


@dataclass
class ServedGavel:
    workdir: Path
    proc: subprocess.Popen | None = None
    grpc_addr: str = ""
    http_base: str = ""
    http_port: int = 0
    keys: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    _drop_schema: object = None
    channel: grpc.Channel | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "serve.log"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def md(self, who: str = "admin") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[who]}"),)

    def http_headers(self, who: str = "admin", idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    # ------------------------------------------------------------ checks

    def assert_running(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"gavel serve exited with {self.proc.returncode if self.proc else None}:\n{self.log_text()[-4000:]}")

    def assert_serving(self) -> None:
        """The process is alive and grpc.health.v1 says SERVING for the overall service."""
        self.assert_running()
        with grpc.insecure_channel(self.grpc_addr) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=20)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, reply

    @contextlib.contextmanager
    def clean_log(self) -> Iterator[None]:
        """Fail if the server logs a traceback (or an unexpected error) while the block runs."""
        start = self.log_path.stat().st_size
        yield
        self.assert_running()
        with self.log_path.open("rb") as f:
            f.seek(start)
            new = f.read().decode("utf-8", errors="replace")
        for marker in CRASH_MARKERS:
            assert marker not in new, f"the server logged `{marker}`:\n{new[-6000:]}"

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        rules = self.workdir / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        (rules / "payments.rules").write_text(RULES, encoding="utf-8")
        self.database_url, self._drop_schema = _database_url()
        self.keys = _seed(self.workdir / "data", self.database_url, rules)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
        env.update(GAVEL_DATA_DIR=str(self.workdir / "data"), GAVEL_RULES=str(rules),
                   GAVEL_DATABASE_URL=self.database_url, GAVEL_RATE_LIMIT_PER_MINUTE="0",
                   GAVEL_WEBHOOK_ALLOW_PRIVATE="1", GAVEL_DRAIN_SECONDS="2", PYTHONUNBUFFERED="1")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gavel.cli", "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
            env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            m = LISTENING.search(self.log_text())
            if m:
                break
            assert self.proc.poll() is None, f"gavel serve did not start:\n{self.log_text()}"
            assert time.monotonic() < deadline, f"gavel serve did not listen within {START_SECONDS} s"
            time.sleep(0.05)
        self.grpc_addr = f"{m.group(1)}:{m.group(2)}"
        self.http_port = int(m.group(4))
        self.http_base = f"http://{m.group(3)}:{self.http_port}"
        # Room for big requests (the server's limit is under test, not the client's) and for big
        # error trailers (a default client's 8 KiB metadata limit is tested on its own).
        self.channel = grpc.insecure_channel(self.grpc_addr,
                                             options=[("grpc.max_send_message_length", 64 * 1024 * 1024),
                                                      ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                                      ("grpc.max_metadata_size", 1024 * 1024)])
        grpc.channel_ready_future(self.channel).result(timeout=START_SECONDS)
        self.assert_serving()

    def stop(self) -> int | None:
        code = None
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if callable(self._drop_schema):
            self._drop_schema()
        return code


def _database_url() -> tuple[str, object]:
    """"" (SQLite in the data dir), or a fresh PostgreSQL schema and a function that drops it."""
    base = os.environ.get("GAVEL_TEST_DATABASE_URL", "")
    if not base:
        return "", None
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    schema = f"bad_input_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


def _seed(data_dir: Path, database_url: str, rules: Path) -> dict[str, str]:
    """Tenants and keys, written with the same functions `gavel keys create` uses."""
    from gavel.app import admin
    from gavel.bootstrap import open_store
    from gavel.config import Settings

    store = open_store(Settings(data_dir=data_dir, database_url=database_url, rules=rules))
    now = datetime.now(UTC)

    def unit(uow) -> dict[str, str]:
        admin.create_tenant(uow, "acme", "acme", now)
        admin.create_tenant(uow, "hooks", "hooks", now)

        def key(tenant: str, env: str, roles: list[str], principal: str) -> str:
            return admin.create_key(uow, None, tenant=tenant, environment=env, roles=roles, principal=principal,
                                    description="bad-input tests", now=now, random_bytes=os.urandom)["secret"]

        return {"admin": key("acme", "test", [], "acme-owner"),
                "finance": key("acme", "test", ["finance_manager"], "alice"),
                "live": key("acme", "live", [], "acme-live-owner"),
                "hooks": key("hooks", "test", [], "hooks-owner"),
                "platform": admin.create_platform_key(uow, "operator", "bad-input tests", now, os.urandom)}

    try:
        return store.run_sync(unit)
    finally:
        asyncio.run(store.close())
