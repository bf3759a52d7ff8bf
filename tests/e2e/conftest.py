"""End-to-end fixtures: a real grpc.aio server on a loopback port over a real store.

The store is a SQLite file in a temporary directory, or PostgreSQL when
GAVEL_TEST_DATABASE_URL is set (each test then gets its own schema).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from gavel.adapters.grpc.server import GrpcServer
from gavel.app import admin
from gavel.bootstrap import build
from gavel.config import Settings
from gavel.v1 import admin_pb2_grpc, agent_pb2_grpc, decision_pb2_grpc, evidence_pb2_grpc

RULES = """package payments
scope action.type in {"payment", "refund"}
let fiat = {"USD", "EUR", "GBP"}
risk 40 "large" when action.amount > 1000

rule blocked deny "agent.blocked" when agent.id in {"rogue-bot"}
rule currency deny "currency.unsupported" when action.currency not in fiat
rule small allow "payment.small" when {
  action.amount <= 500
  agent.registered == false or agent.spend.today + action.amount <= agent.daily_limit
}
rule over_budget deny "budget.daily_exceeded" when {
  agent.registered == true
  agent.spend.today + action.amount > agent.daily_limit
}
rule medium require_approval "payment.needs_approval"
  when { action.amount > 500
    action.amount <= 10000 }
  route { role: "finance_manager", approvals: 1, timeout: 1h, on_timeout: deny }
rule large deny "payment.too_large" when action.amount > 10000
"""


@dataclass
class Harness:
    addr: str
    runtime: object
    keys: dict[str, str] = field(default_factory=dict)
    channel: grpc.aio.Channel | None = None

    def md(self, who: str = "admin_test") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[who]}"),)

    @property
    def decisions(self) -> decision_pb2_grpc.DecisionServiceStub:
        return decision_pb2_grpc.DecisionServiceStub(self.channel)

    @property
    def agents(self) -> agent_pb2_grpc.AgentServiceStub:
        return agent_pb2_grpc.AgentServiceStub(self.channel)

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.channel)

    @property
    def evidence(self) -> evidence_pb2_grpc.EvidenceServiceStub:
        return evidence_pb2_grpc.EvidenceServiceStub(self.channel)


def database_url(tmp_path: Path) -> tuple[str, callable]:
    base = os.environ.get("GAVEL_TEST_DATABASE_URL")
    if not base:
        return "", lambda: None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

    return url, drop


def seed_keys(runtime) -> dict[str, str]:
    now = datetime.now(UTC)

    def unit(uow):
        keys = {}
        for tenant in ("acme", "globex"):
            admin.create_tenant(uow, tenant, tenant, now)
            for env in ("test", "live"):
                keys[f"{'admin' if tenant == 'acme' else tenant}_{env}"] = admin.create_key(
                    uow, None, tenant=tenant, environment=env, roles=[], principal=f"{tenant}-owner",
                    description="", now=now, random_bytes=os.urandom)["secret"]
        for who, roles in (("agent", ["agent"]), ("auditor", ["auditor"]), ("finance", ["finance_manager"])):
            keys[who] = admin.create_key(uow, None, tenant="acme", environment="test", roles=roles,
                                         principal=f"{who}-person", description="", now=now,
                                         random_bytes=os.urandom)["secret"]
        # an agent key bound to bot-1 (the agent most tests decide for): it acts for bot-1 only
        keys["agent_bot1"] = admin.create_key(uow, None, tenant="acme", environment="test", roles=["agent"],
                                              principal="bot-1-runtime", description="", now=now,
                                              random_bytes=os.urandom, agents=["bot-1"])["secret"]
        keys["platform"] = admin.create_platform_key(uow, "operator", "", now, os.urandom)
        return keys

    return runtime.store.run_sync(unit)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "payments.rules").write_text(RULES)
    return d


@pytest.fixture
def settings_overrides() -> dict:
    return {}


@pytest.fixture
async def harness(tmp_path: Path, rules_dir: Path, settings_overrides: dict):
    url, drop = database_url(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", rules=rules_dir, grpc_addr="127.0.0.1:0", database_url=url,
                        **settings_overrides)
    runtime = build(settings)
    server = GrpcServer(runtime)
    port = await server.start("127.0.0.1:0")
    h = Harness(f"127.0.0.1:{port}", runtime, seed_keys(runtime))
    h.channel = grpc.aio.insecure_channel(h.addr)
    try:
        yield h
    finally:
        await h.channel.close()
        await server.stop(0)
        drop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "payments.rules").write_text(RULES)
    return tmp_path
