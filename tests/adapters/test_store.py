"""SqlStore and its repositories, on SQLite and (with GAVEL_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from gavel.adapters.db import SqlStore, migrate, sqlite_url
from gavel.adapters.db.engine import sqlite_path
from gavel.app.model import (
    AgentRecord,
    ApiKeyRecord,
    DecisionRecord,
    ExecutionRecord,
    IdempotencyRecord,
    Reservation,
    Tenant,
    TokenRecord,
)
from gavel.app.ports import Conflict, StoreUnavailable

NOW = datetime(2026, 11, 22, 13, 45, 6, 123456, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))


CHAIN = ("ten_a", "test")  # the ledger chain the batched units name (see SqlStore.write)


def tenant(tenant_id: str = "ten_a", name: str | None = None) -> Tenant:
    return Tenant(tenant_id=tenant_id, name=name or f"name of {tenant_id}", created_at=NOW)


def api_key(
    key_id: str = "k_1", tenant_id: str | None = "ten_a", environment: str | None = "test", **changes
) -> ApiKeyRecord:
    key = ApiKeyRecord(
        key_id=key_id, tenant_id=tenant_id, environment=environment, roles=("decide", "approve"),
        principal="ops@example.com", description="ci key", secret_hash=bytes(range(32)), created_at=NOW,
    )
    return replace(key, **changes)


def agent(agent_id: str = "agent-1", tenant_id: str = "ten_a", environment: str = "test", **changes) -> AgentRecord:
    record = AgentRecord(
        tenant_id=tenant_id, environment=environment, agent_id=agent_id, name="Invoice bot", owner="finance",
        control_tier="t2", risk_level="high", allowed_actions=("pay_invoice", "refund"),
        daily_limit=Decimal("1000.00"), monthly_limit=Decimal("25000.50"), human_sponsor_id="u_9",
        default_mode="enforce", status="active", created_at=NOW, updated_at=NOW,
    )
    return replace(record, **changes)


def decision(
    decision_id: str = "dec_1", tenant_id: str = "ten_a", environment: str = "test", **changes
) -> DecisionRecord:
    record = DecisionRecord(
        decision_id=decision_id, tenant_id=tenant_id, environment=environment, agent_id="agent-1",
        created_at=datetime(2026, 11, 22, 19, 15, 6, 999999, tzinfo=IST), outcome="allow", state="approved",
        mode="enforce", enforced=True, reason_code="WITHIN_BUDGET", bundle_hash="sha256:" + "ab" * 32,
        request={"action": "pay_invoice", "args": {"amount": "120.50", "memo": "café €", "lines": [1, 2.5, None]}},
        facts={"spend_today": "10.00", "flags": {"new_vendor": False}},
        result={"reasons": [{"code": "WITHIN_BUDGET", "rule": "budget.daily"}], "token": "eyJ..."},
        token_jti="jti_1", amount=Decimal("120.50"), currency="EUR", correlation_id="corr-7",
    )
    return replace(record, **changes)


def token(jti: str = "jti_1", tenant_id: str = "ten_a", environment: str = "test", **changes) -> TokenRecord:
    record = TokenRecord(
        jti=jti, tenant_id=tenant_id, environment=environment, decision_id="dec_1", agent_id="agent-1",
        args_hash="sha256:" + "cd" * 32, issued_at=NOW, expires_at=NOW + timedelta(minutes=5),
    )
    return replace(record, **changes)


def reservation(decision_id: str = "dec_1", **changes) -> Reservation:
    record = Reservation(
        decision_id=decision_id, tenant_id="ten_a", environment="test", agent_id="agent-1",
        amount=Decimal("120.50"), day="2026-11-22", month="2026-11",
    )
    return replace(record, **changes)


def execution(decision_id: str = "dec_1", tenant_id: str = "ten_a", environment: str = "test") -> ExecutionRecord:
    return ExecutionRecord(
        decision_id=decision_id, tenant_id=tenant_id, environment=environment, status="succeeded",
        executed_at=NOW + timedelta(seconds=3), amount=Decimal("120.5"), currency="EUR",
        external_transaction_id="tx_42", error_code="", error_message="", reconciliation_status="mismatched",
        authorized_amount=Decimal("120.50"), executed_amount=Decimal("120.49"), variance=Decimal("-0.01"),
        created_at=NOW + timedelta(seconds=4),
    )


def idempotency(
    key: str = "idem-1", tenant_id: str = "ten_a", environment: str = "test", **changes
) -> IdempotencyRecord:
    record = IdempotencyRecord(
        tenant_id=tenant_id, environment=environment, operation="DecisionService.Decide", key=key,
        request_hash="sha256:" + "ef" * 32, response={"decision_id": "dec_1", "outcome": "allow"}, created_at=NOW,
    )
    return replace(record, **changes)


# -- round trips ---------------------------------------------------------------------------------


async def test_every_record_round_trips_exactly(store: SqlStore) -> None:
    records = {
        "tenant": tenant(),
        "operator_key": api_key("k_admin", tenant_id=None, environment=None, roles=()),
        "key": api_key(revoked_at=NOW + timedelta(days=1)),
        "agent": agent(),
        "bare_agent": AgentRecord(tenant_id="ten_a", environment="test", agent_id="bare"),
        "decision": decision(),
        "denied": decision("dec_2", outcome="deny", enforced=False, token_jti=None, amount=None, currency=None),
        "token": token(consumed_at=None),
        "reservation": reservation(committed_amount=Decimal("0.00000001")),
        "execution": execution(),
        "idempotency": idempotency(created_at=None),
    }

    def add_all(uow) -> None:
        uow.tenants.add(records["tenant"])
        uow.keys.add(records["operator_key"])
        uow.keys.add(records["key"])
        uow.agents.add(records["agent"])
        uow.agents.add(records["bare_agent"])
        uow.decisions.add(records["decision"])
        uow.decisions.add(records["denied"])
        uow.tokens.add(records["token"])
        uow.spend.add_reservation(records["reservation"])
        uow.executions.add(records["execution"])
        uow.idempotency.put(records["idempotency"])

    await store.write(add_all)

    def get_all(uow) -> dict:
        return {
            "tenant": uow.tenants.get("ten_a"),
            "operator_key": uow.keys.get("k_admin"),
            "key": uow.keys.get("k_1"),
            "agent": uow.agents.get("ten_a", "test", "agent-1"),
            "bare_agent": uow.agents.get("ten_a", "test", "bare"),
            "decision": uow.decisions.get("ten_a", "test", "dec_1"),
            "denied": uow.decisions.get("ten_a", "test", "dec_2"),
            "token": uow.tokens.get("jti_1"),
            "reservation": uow.spend.get_reservation("dec_1"),
            "execution": uow.executions.get("ten_a", "test", "dec_1"),
            "idempotency": uow.idempotency.get("ten_a", "test", "DecisionService.Decide", "idem-1"),
        }

    loaded = await store.read(get_all)
    assert loaded == records
    # Exact means the scale too, and instants come back in UTC.
    assert str(loaded["decision"].amount) == "120.50"
    assert str(loaded["execution"].variance) == "-0.01"
    assert str(loaded["reservation"].committed_amount) == "1E-8"
    assert loaded["decision"].created_at.tzinfo is UTC
    assert loaded["decision"].created_at == datetime(2026, 11, 22, 13, 45, 6, 999999, tzinfo=UTC)
    assert loaded["key"].roles == ("decide", "approve") and isinstance(loaded["key"].secret_hash, bytes)


async def test_extreme_values_round_trip(store: SqlStore) -> None:
    huge = Decimal("123456789012345678901234567890.123456789012345678")
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    record = agent(daily_limit=huge, monthly_limit=Decimal("1E+3"), created_at=before_epoch,
                   updated_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    await store.write(lambda uow: uow.agents.add(record))
    loaded = await store.read(lambda uow: uow.agents.get("ten_a", "test", "agent-1"))
    assert loaded == record
    assert str(loaded.daily_limit) == str(huge) and str(loaded.monthly_limit) == "1E+3"


async def test_json_is_stored_canonically(store: SqlStore, database_url: str) -> None:
    await store.write(lambda uow: uow.decisions.add(decision(request={"b": 1, "a": {"é": "2.50", "c": [True]}})))
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT request FROM decisions")).scalar_one()
    finally:
        engine.dispose()
    assert stored == '{"a":{"c":[true],"é":"2.50"},"b":1}'


async def test_values_without_an_exact_form_are_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        await store.write(lambda uow: uow.tenants.add(Tenant("t", "n", datetime(2026, 1, 1))))
    with pytest.raises(TypeError, match="expected a Decimal"):
        await store.write(lambda uow: uow.agents.add(agent(daily_limit=1.5)))
    with pytest.raises(ValueError, match="finite"):
        await store.write(lambda uow: uow.agents.add(agent(daily_limit=Decimal("NaN"))))
    with pytest.raises(TypeError):
        await store.write(lambda uow: uow.decisions.add(decision(request={"amount": Decimal("1.5")})))
    assert await store.read(lambda uow: (uow.tenants.get("t"), uow.agents.get("ten_a", "test", "agent-1"))) == (
        None, None,
    )


# -- uniqueness ----------------------------------------------------------------------------------


async def test_duplicates_raise_conflict_and_the_rest_of_the_unit_is_kept(store: SqlStore) -> None:
    await store.write(lambda uow: (
        uow.tenants.add(tenant()), uow.keys.add(api_key()), uow.agents.add(agent()), uow.decisions.add(decision()),
        uow.tokens.add(token()), uow.spend.add_reservation(reservation()), uow.executions.add(execution()),
        uow.idempotency.put(idempotency()),
    ))
    duplicates = {
        "tenant id": lambda uow: uow.tenants.add(tenant(name="another name")),
        "tenant name": lambda uow: uow.tenants.add(tenant("ten_other", name="name of ten_a")),
        "api key": lambda uow: uow.keys.add(api_key(tenant_id="ten_b")),
        "agent": lambda uow: uow.agents.add(agent(name="renamed")),
        "decision": lambda uow: uow.decisions.add(decision(tenant_id="ten_b")),
        "token": lambda uow: uow.tokens.add(token()),
        "reservation": lambda uow: uow.spend.add_reservation(reservation()),
        "execution": lambda uow: uow.executions.add(execution()),
        "idempotency key": lambda uow: uow.idempotency.put(idempotency(request_hash="sha256:other")),
    }

    def try_each(uow) -> list[str]:
        conflicts = []
        for what, add in duplicates.items():
            uow.tenants.add(tenant(f"ten_{what.replace(' ', '_')}"))  # written before the conflict...
            try:
                add(uow)
            except Conflict:
                conflicts.append(what)
        return conflicts

    assert await store.write(try_each) == list(duplicates)
    # ... and still committed: a conflict does not spoil the transaction around it.
    names = await store.read(lambda uow: [uow.tenants.get(f"ten_{what.replace(' ', '_')}") for what in duplicates])
    assert all(names)
    assert (await store.read(lambda uow: uow.agents.get("ten_a", "test", "agent-1"))).name == "Invoice bot"


async def test_agent_ids_are_unique_per_tenant_and_environment_only(store: SqlStore) -> None:
    await store.write(lambda uow: [
        uow.agents.add(agent(tenant_id=t, environment=e)) for t in ("ten_a", "ten_b") for e in ("test", "live")
    ])
    with pytest.raises(Conflict):
        await store.write(lambda uow: uow.agents.add(agent(tenant_id="ten_b", environment="live")))


async def test_idempotency_put_and_get(store: SqlStore) -> None:
    record = idempotency(response={"decision_id": "dec_9", "amount": "10.10", "nested": {"z": [], "a": None}})
    await store.write(lambda uow: uow.idempotency.put(record))
    decide = "DecisionService.Decide"
    assert await store.read(lambda uow: uow.idempotency.get("ten_a", "test", decide, "idem-1")) == record
    with pytest.raises(Conflict):
        await store.write(lambda uow: uow.idempotency.put(replace(record, response={})))
    # The same key is free in another tenant, environment or operation; platform calls use "".
    others = [
        replace(record, tenant_id="ten_b"), replace(record, environment="live"),
        replace(record, operation="ApprovalService.Approve"), replace(record, tenant_id="", environment=""),
    ]
    await store.write(lambda uow: [uow.idempotency.put(other) for other in others])
    found = await store.read(lambda uow: [
        uow.idempotency.get(o.tenant_id, o.environment, o.operation, o.key) for o in others
    ])
    assert found == others
    assert await store.read(lambda uow: uow.idempotency.get("ten_a", "test", decide, "idem-2")) is None


# -- isolation -----------------------------------------------------------------------------------


async def test_records_never_cross_tenants_or_environments(store: SqlStore) -> None:
    def add(uow) -> None:
        uow.agents.add(agent())
        uow.decisions.add(decision())
        uow.executions.add(execution())
        uow.idempotency.put(idempotency())
        uow.spend.add("ten_a", "test", "agent-1", "2026-11-22", Decimal("5"))

    await store.write(add)
    for tenant_id, environment in (("ten_b", "test"), ("ten_a", "live"), ("ten_b", "live")):
        def look(uow, t=tenant_id, e=environment) -> list:
            return [
                uow.agents.get(t, e, "agent-1"),
                uow.agents.list(t, e, None, 100, None),
                uow.decisions.get(t, e, "dec_1"),
                uow.executions.get(t, e, "dec_1"),
                uow.idempotency.get(t, e, "DecisionService.Decide", "idem-1"),
                uow.spend.total(t, e, "agent-1", "2026-11-22"),
            ]

        assert await store.read(look) == [None, [], None, None, None, Decimal(0)]
        # Writes aimed at the wrong tenant or environment change nothing either.
        await store.write(lambda uow, t=tenant_id, e=environment: uow.decisions.set_state(t, e, "dec_1", "expired", {}))
    assert (await store.read(lambda uow: uow.decisions.get("ten_a", "test", "dec_1"))).state == "approved"


# -- listing -------------------------------------------------------------------------------------


async def test_agents_list_in_id_order_page_by_page(store: SqlStore) -> None:
    ids = [f"agent-{n:02d}" for n in (7, 3, 11, 1, 9, 5)]
    await store.write(lambda uow: [
        uow.agents.add(agent(i, status="paused" if i.endswith(("3", "9")) else "active")) for i in ids
    ] + [uow.agents.add(agent("agent-00", environment="live"))])
    pages, after = [], None
    while True:
        page = await store.read(lambda uow, a=after: uow.agents.list("ten_a", "test", None, 4, a))
        if not page:
            break
        pages.append([a.agent_id for a in page])
        after = page[-1].agent_id
    assert pages == [["agent-01", "agent-03", "agent-05", "agent-07"], ["agent-09", "agent-11"]]
    paused = await store.read(lambda uow: uow.agents.list("ten_a", "test", "paused", 10, None))
    assert [a.agent_id for a in paused] == ["agent-03", "agent-09"]
    active_after_05 = await store.read(lambda uow: uow.agents.list("ten_a", "test", "active", 10, "agent-05"))
    assert [a.agent_id for a in active_after_05] == ["agent-07", "agent-11"]


async def test_api_keys_list_revoke_and_revoke_matching(store: SqlStore) -> None:
    keys = [api_key(f"k_{n}", description="rotate me" if n % 2 else "keep") for n in range(1, 7)]
    keys += [api_key("k_live", environment="live", description="rotate me"), api_key("k_other", tenant_id="ten_b")]
    keys += [api_key("k_admin", tenant_id=None, environment=None)]
    await store.write(lambda uow: [uow.keys.add(k) for k in keys])

    assert await store.write(lambda uow: uow.keys.revoke("k_2", NOW)) is True
    assert await store.write(lambda uow: uow.keys.revoke("k_2", NOW)) is False
    assert await store.write(lambda uow: uow.keys.revoke("k_unknown", NOW)) is False

    def ids(tenant_id, environment, include_revoked, limit=100, after=None):
        return store.read(lambda uow: [
            k.key_id for k in uow.keys.list(tenant_id, environment, include_revoked, limit, after)
        ])

    assert await ids("ten_a", "test", False) == ["k_1", "k_3", "k_4", "k_5", "k_6"]
    assert await ids("ten_a", "test", True, limit=3) == ["k_1", "k_2", "k_3"]
    assert await ids("ten_a", "test", True, after="k_3") == ["k_4", "k_5", "k_6"]
    assert await ids("ten_a", None, False, limit=2, after="k_4") == ["k_5", "k_6"]
    assert await ids("ten_a", None, False, after="k_6") == ["k_live"]  # both environments
    assert await ids(None, None, True) == sorted(k.key_id for k in keys)  # a platform admin sees all

    assert await store.write(lambda uow: uow.keys.revoke_matching("ten_a", "rotate me", NOW)) == 4  # k_1, 3, 5, live
    assert await ids("ten_a", "test", False) == ["k_4", "k_6"]
    assert await ids("ten_a", "live", False) == []
    assert await ids("ten_b", "test", False) == ["k_other"]
    assert (await store.read(lambda uow: uow.keys.get("k_1"))).revoked_at == NOW


# -- state changes -------------------------------------------------------------------------------


async def test_agent_update_and_decision_state_and_reservation(store: SqlStore) -> None:
    await store.write(lambda uow: (uow.agents.add(agent()), uow.decisions.add(decision()),
                                   uow.spend.add_reservation(reservation())))
    paused = agent(status="paused", daily_limit=None, allowed_actions=(), updated_at=NOW + timedelta(hours=1))
    await store.write(lambda uow: uow.agents.update(paused))
    await store.write(lambda uow: uow.decisions.set_state("ten_a", "test", "dec_1", "executed", {"done": True}))
    await store.write(lambda uow: uow.spend.set_reservation("dec_1", "committed", Decimal("120.49")))
    got = await store.read(lambda uow: (
        uow.agents.get("ten_a", "test", "agent-1"), uow.decisions.get("ten_a", "test", "dec_1"),
        uow.spend.get_reservation("dec_1"),
    ))
    assert got[0] == paused
    assert (got[1].state, got[1].result) == ("executed", {"done": True})
    assert got[2] == reservation(state="committed", committed_amount=Decimal("120.49"))


async def test_tokens_move_from_issued_exactly_once(store: SqlStore) -> None:
    await store.write(lambda uow: [uow.tokens.add(token(j)) for j in ("jti_1", "jti_2")])
    assert await store.write(lambda uow: uow.tokens.consume("jti_1", NOW)) is True
    assert await store.write(lambda uow: uow.tokens.consume("jti_1", NOW)) is False
    assert await store.write(lambda uow: uow.tokens.revoke("jti_1", NOW)) is False
    assert await store.write(lambda uow: uow.tokens.revoke("jti_2", NOW)) is True
    assert await store.write(lambda uow: uow.tokens.consume("jti_2", NOW)) is False
    assert await store.write(lambda uow: uow.tokens.consume("jti_unknown", NOW)) is False
    consumed, revoked = await store.read(lambda uow: (uow.tokens.get("jti_1"), uow.tokens.get("jti_2")))
    assert (consumed.state, consumed.consumed_at, consumed.revoked_at) == ("consumed", NOW, None)
    assert (revoked.state, revoked.consumed_at, revoked.revoked_at) == ("revoked", None, NOW)


async def test_fifty_concurrent_consumes_have_one_winner(store: SqlStore) -> None:
    await store.write(lambda uow: uow.tokens.add(token()))
    wins = await asyncio.gather(*(store.write(lambda uow: uow.tokens.consume("jti_1", NOW)) for _ in range(50)))
    assert wins.count(True) == 1


async def test_two_stores_racing_on_one_database_consume_each_token_once(database_url: str) -> None:
    jtis = [f"jti_{n}" for n in range(40)]
    first, second = SqlStore(database_url), SqlStore(database_url)
    try:
        await first.write(lambda uow: [uow.tokens.add(token(j)) for j in jtis])
        attempts = [
            s.write(lambda uow, j=j: uow.tokens.consume(j, NOW)) for j in jtis for s in (first, second)
        ]
        wins = await asyncio.gather(*attempts)
    finally:
        await first.close()
        await second.close()
    assert wins.count(True) == len(jtis)
    assert all(wins[i] != wins[i + 1] for i in range(0, len(wins), 2))


async def test_expired_issued_tokens_oldest_first(store: SqlStore) -> None:
    expiries = {"jti_a": 30, "jti_b": -10, "jti_c": -20, "jti_d": 0, "jti_e": -5}
    await store.write(lambda uow: [
        uow.tokens.add(token(j, expires_at=NOW + timedelta(seconds=s))) for j, s in expiries.items()
    ])
    await store.write(lambda uow: uow.tokens.consume("jti_e", NOW))
    expired = await store.read(lambda uow: uow.tokens.expired_issued(NOW, 10))
    assert [t.jti for t in expired] == ["jti_c", "jti_b", "jti_d"]
    assert [t.jti for t in await store.read(lambda uow: uow.tokens.expired_issued(NOW, 2))] == ["jti_c", "jti_b"]


# -- spend ---------------------------------------------------------------------------------------


async def test_spend_totals_add_exactly(store: SqlStore) -> None:
    assert await store.read(lambda uow: uow.spend.total("ten_a", "test", "agent-1", "2026-11")) == Decimal(0)
    await store.write(lambda uow: uow.spend.add("ten_a", "test", "agent-1", "2026-11", Decimal("0.1")))
    await store.write(lambda uow: uow.spend.add("ten_a", "test", "agent-1", "2026-11", Decimal("0.20")))
    await store.write(lambda uow: uow.spend.add("ten_a", "test", "agent-1", "2026-11", Decimal("-0.05")))
    big = Decimal("99999999999999999999999999999.99999999")
    await store.write(lambda uow: uow.spend.add("ten_a", "test", "agent-1", "2026-11", big))
    total = await store.read(lambda uow: uow.spend.total("ten_a", "test", "agent-1", "2026-11"))
    # Exact beyond the default 28 digits, where `big + Decimal("0.25")` itself would round.
    assert str(total) == "100000000000000000000000000000.24999999"


async def test_concurrent_spend_adds_are_exact(store: SqlStore) -> None:
    adds = [store.write(lambda uow: uow.spend.add("ten_a", "test", "agent-1", "2026-11-22", Decimal("1.01")))
            for _ in range(100)]
    await asyncio.gather(*adds)
    total = await store.read(lambda uow: uow.spend.total("ten_a", "test", "agent-1", "2026-11-22"))
    assert str(total) == "101.00"


async def test_two_stores_adding_spend_concurrently_are_exact(database_url: str) -> None:
    stores = [SqlStore(database_url, max_batch=4) for _ in range(3)]
    try:
        adds = [s.write(lambda uow: uow.spend.add("ten_a", "test", "agent-1", "2026-11", Decimal("1.01")))
                for _ in range(40) for s in stores]
        await asyncio.gather(*adds)
        total = await stores[0].read(lambda uow: uow.spend.total("ten_a", "test", "agent-1", "2026-11"))
    finally:
        for s in stores:
            await s.close()
    assert str(total) == "121.20"


# -- group commit --------------------------------------------------------------------------------


async def test_concurrent_writes_share_commits(store: SqlStore) -> None:
    before = store.committed_batches
    await asyncio.gather(*(store.write(lambda uow, n=n: uow.tenants.add(tenant(f"ten_{n}")), chain=CHAIN)
                           for n in range(200)))
    batches = store.committed_batches - before
    assert 1 <= batches < 200
    assert store.committed_writes == 200
    found = await store.read(lambda uow: [uow.tenants.get(f"ten_{n}") for n in range(200)])
    assert all(found)


async def test_a_batch_runs_its_units_in_chain_order_and_a_unit_naming_none_alone(store: SqlStore) -> None:
    """Every replica's batches lock chain heads in one order (so two batches never wait on each other
    in a cycle); a unit that names no chain may touch several and gets a batch of its own."""
    gate = threading.Event()
    held = store.write(lambda uow: gate.wait(10), chain=CHAIN)  # the batch queues up behind it
    ran: list[tuple[str, int]] = []

    def unit(name):
        def run(uow):
            ran.append((name, store.committed_batches))
        return run

    arrivals = [("b2", ("ten_b", "live")), ("a1", ("ten_a", "test")), ("b1", ("ten_a", "live")),
                ("a2", ("ten_a", "test")), ("none", None), ("after", ("ten_a", "live"))]
    queued = [store.write(unit(name), chain=chain) for name, chain in arrivals]
    gate.set()
    await held
    await asyncio.gather(*queued)
    names = [name for name, _ in ran]
    assert names == ["b1", "a1", "a2", "b2", "none", "after"]  # sorted by chain, stable within one
    batch_of = dict(ran)
    assert batch_of["b1"] == batch_of["a1"] == batch_of["a2"] == batch_of["b2"]
    assert batch_of["b2"] < batch_of["none"] < batch_of["after"]


async def test_a_failing_unit_is_undone_alone(store: SqlStore) -> None:
    gate = threading.Event()
    held = store.write(lambda uow: gate.wait(10))  # keeps the writer busy while the batch queues up

    def good(name):
        def unit(uow):
            uow.tenants.add(tenant(name))
            return store.committed_batches  # the same number for every unit of one batch
        return unit

    def bad(uow):
        uow.tenants.add(tenant("ten_bad"))
        uow.spend.add("ten_a", "test", "agent-1", "2026-11", Decimal("1"))
        raise ValueError("the use case refused")

    def conflicting(uow):
        uow.tenants.add(tenant("ten_conflict"))
        uow.tenants.add(tenant("ten_first"))  # raises Conflict: the unit is undone, its caller told

    chain = CHAIN
    queued = [store.write(good("ten_first"), chain=chain), store.write(bad, chain=chain),
              store.write(conflicting, chain=chain), store.write(good("ten_last"), chain=chain)]
    gate.set()
    await held
    first, failed, conflict, last = await asyncio.gather(*queued, return_exceptions=True)
    assert first == last  # one batch
    assert isinstance(failed, ValueError) and isinstance(conflict, Conflict)
    present = await store.read(lambda uow: {
        n: uow.tenants.get(n) is not None for n in ("ten_first", "ten_bad", "ten_conflict", "ten_last")
    })
    assert present == {"ten_first": True, "ten_bad": False, "ten_conflict": False, "ten_last": True}
    assert await store.read(lambda uow: uow.spend.total("ten_a", "test", "agent-1", "2026-11")) == 0


async def test_a_failed_commit_fails_the_whole_batch_and_writes_nothing(store: SqlStore) -> None:
    gate = threading.Event()
    held = store.write(lambda uow: gate.wait(10), chain=CHAIN)
    failures = []

    def fail_commit(connection) -> None:
        if not failures:
            failures.append(True)
            raise RuntimeError("disk full, say")

    # White box: the only way to make a commit fail on cue (SQLite's batches run on the loop's engine).
    writer_engine = store._inline_engine or store._writer_engine
    event.listen(writer_engine, "commit", fail_commit)
    try:
        queued = [store.write(lambda uow, n=n: uow.tenants.add(tenant(f"ten_{n}")), chain=CHAIN) for n in range(5)]
        gate.set()
        outcomes = await asyncio.gather(held, *queued, return_exceptions=True)
    finally:
        event.remove(writer_engine, "commit", fail_commit)
    # The held unit may have been batched alone (committed) or with the others (failed).
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes[1:])
    assert "disk full" in str(outcomes[1])
    assert store.failed_batches == 1
    assert await store.read(lambda uow: [uow.tenants.get(f"ten_{n}") for n in range(5)]) == [None] * 5
    await store.write(lambda uow: uow.tenants.add(tenant("ten_after")))  # the store carries on
    assert await store.read(lambda uow: uow.tenants.get("ten_after")) is not None


async def test_close_commits_the_writes_already_queued(database_url: str) -> None:
    store = SqlStore(database_url)
    queued = [store.write(lambda uow, n=n: uow.tenants.add(tenant(f"ten_{n}")), chain=CHAIN) for n in range(50)]
    await store.close()
    await asyncio.gather(*queued)
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.write(lambda uow: None)
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.read(lambda uow: None)
    assert await store.ping() is False
    reopened = SqlStore(database_url)
    try:
        assert all(await reopened.read(lambda uow: [uow.tenants.get(f"ten_{n}") for n in range(50)]))
    finally:
        await reopened.close()


async def test_a_write_abandoned_before_it_ran_is_skipped(store: SqlStore) -> None:
    gate = threading.Event()
    held = store.write(lambda uow: gate.wait(10))
    abandoned = store.write(lambda uow: uow.tenants.add(tenant("ten_abandoned")))
    abandoned.cancel()
    gate.set()
    await held
    await store.write(lambda uow: None)
    assert await store.read(lambda uow: uow.tenants.get("ten_abandoned")) is None


async def test_reads_never_persist_anything(store: SqlStore) -> None:
    with contextlib.suppress(StoreUnavailable):  # PostgreSQL refuses outright: reads are READ ONLY
        await store.read(lambda uow: uow.tenants.add(tenant()))
    assert await store.read(lambda uow: uow.tenants.get("ten_a")) is None  # SQLite: rolled back


def test_run_sync_commits_in_the_calling_thread(database_url: str) -> None:
    store = SqlStore(database_url)
    try:
        store.run_sync(lambda uow: uow.tenants.add(tenant()))
        with pytest.raises(Conflict):
            store.run_sync(lambda uow: uow.tenants.add(tenant()))
        with pytest.raises(ZeroDivisionError):
            store.run_sync(lambda uow: (uow.tenants.add(tenant("ten_b")), 1 / 0))
        assert store.run_sync(lambda uow: (uow.tenants.get("ten_a") is not None, uow.tenants.get("ten_b"))) == (
            True, None,
        )
    finally:
        asyncio.run(store.close())


async def test_ping(store: SqlStore) -> None:
    assert await store.ping() is True


# -- durability and availability ------------------------------------------------------------------

_WRITE_THEN_DIE = """
import asyncio, os, signal, sys
from datetime import UTC, datetime
from gavel.adapters.db import SqlStore
from gavel.app.model import Tenant

async def main():
    store = SqlStore(sys.argv[1])
    await store.write(lambda uow: uow.tenants.add(Tenant("ten_acknowledged", "acknowledged", datetime.now(UTC))))
    print("acknowledged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no clean shutdown of anything

asyncio.run(main())
"""


async def test_an_acknowledged_write_survives_a_crash(database_url: str) -> None:
    child = subprocess.run([sys.executable, "-c", _WRITE_THEN_DIE, database_url], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip() == "acknowledged"
    fresh = SqlStore(database_url)
    try:
        assert (await fresh.read(lambda uow: uow.tenants.get("ten_acknowledged"))).name == "acknowledged"
    finally:
        await fresh.close()


_RACE = """
import asyncio, json, sys, time
from datetime import UTC, datetime
from decimal import Decimal
from gavel.adapters.db import SqlStore

async def main():
    url, start_at, jtis = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3])
    store = SqlStore(url, max_batch=8)
    await store.ping()
    time.sleep(max(0.0, start_at - time.time()))
    now = datetime.now(UTC)
    wins = await asyncio.gather(*(store.write(lambda uow, j=j: uow.tokens.consume(j, now)) for j in jtis))
    await asyncio.gather(*(store.write(lambda uow: uow.spend.add("ten_a", "test", "agent-1", "2026-11",
                                                                  Decimal("1.01"))) for _ in range(25)))
    await store.close()
    print(json.dumps([j for j, won in zip(jtis, wins) if won]))

asyncio.run(main())
"""


async def test_processes_racing_consume_each_token_once_and_add_spend_exactly(store: SqlStore,
                                                                             database_url: str) -> None:
    jtis = [f"jti_{n}" for n in range(30)]
    await store.write(lambda uow: [uow.tokens.add(token(j)) for j in jtis])
    start_at = time.time() + 3
    children = [
        subprocess.Popen([sys.executable, "-c", _RACE, database_url, str(start_at), json.dumps(jtis)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in outputs]
    won = [jti for out, _ in outputs for jti in json.loads(out)]
    assert sorted(won) == sorted(jtis)
    assert str(await store.read(lambda uow: uow.spend.total("ten_a", "test", "agent-1", "2026-11"))) == "101.00"


async def test_sqlite_directory_vanishing_is_unavailable_until_it_returns(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "data" / "gavel.db")
    migrate(url)
    store = SqlStore(url)
    try:
        await store.write(lambda uow: uow.tenants.add(tenant("ten_before")))
        assert await store.read(lambda uow: uow.tenants.get("ten_before")) is not None
        (tmp_path / "data").rename(tmp_path / "elsewhere")
        with pytest.raises(StoreUnavailable, match="unable to open database file"):
            await store.write(lambda uow: uow.tenants.add(tenant("ten_lost")))
        with pytest.raises(StoreUnavailable):
            await store.read(lambda uow: uow.tenants.get("ten_before"))
        assert await store.ping() is False
        assert not (tmp_path / "data").exists()  # the store never creates a database by itself
        (tmp_path / "elsewhere").rename(tmp_path / "data")
        await store.write(lambda uow: uow.tenants.add(tenant("ten_after")))
        found = await store.read(lambda uow: [uow.tenants.get(n) for n in ("ten_before", "ten_lost", "ten_after")])
        assert [f is not None for f in found] == [True, False, True]
        assert await store.ping() is True
    finally:
        await store.close()


async def test_sqlite_file_deleted_and_restored_from_backup(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "data" / "gavel.db")
    migrate(url)
    store = SqlStore(url)
    try:
        await store.write(lambda uow: uow.tenants.add(tenant("ten_before")))
        shutil.copytree(tmp_path / "data", tmp_path / "backup")
        shutil.rmtree(tmp_path / "data")
        with pytest.raises(StoreUnavailable):
            await store.write(lambda uow: uow.tenants.add(tenant("ten_lost")))
        shutil.copytree(tmp_path / "backup", tmp_path / "data")
        await store.write(lambda uow: uow.tenants.add(tenant("ten_after")))
        found = await store.read(lambda uow: [uow.tenants.get(n) for n in ("ten_before", "ten_lost", "ten_after")])
        assert [f is not None for f in found] == [True, False, True]
    finally:
        await store.close()


_READ_ONLY_FILE = """
import asyncio, os, sys
from datetime import UTC, datetime
from gavel.adapters.db import SqlStore, migrate, sqlite_url
from gavel.app.model import Tenant
from gavel.app.ports import StoreUnavailable

def add(name):
    return lambda uow: uow.tenants.add(Tenant(name, name, datetime.now(UTC)))

async def round_trip(url):
    migrate(url)
    store = SqlStore(url)
    await store.write(add("ten_before"))
    return store

async def main():
    url, path = sys.argv[1], sys.argv[2]
    if os.geteuid() == 0:
        # Root ignores file permissions: load every module while the interpreter (under /root)
        # is still readable, then become `nobody`, who owns the test directory.
        await (await round_trip(sqlite_url(os.path.join(os.path.dirname(path), "warm-up.db")))).close()
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    store = await round_trip(url)
    os.chmod(path, 0o444)
    try:
        await store.write(add("ten_refused"))
        raise SystemExit("a write to a read-only database file succeeded")
    except StoreUnavailable as error:
        print(error, flush=True)
    os.chmod(path, 0o644)
    await store.write(add("ten_after"))
    names = await store.read(lambda uow: [uow.tenants.get(n) is not None for n in ("ten_before", "ten_refused",
                                                                                  "ten_after")])
    assert names == [True, False, True], names
    await store.close()
    print("recovered", flush=True)

asyncio.run(main())
"""


def test_sqlite_read_only_file_is_unavailable_until_writable_again() -> None:
    directory = Path(tempfile.mkdtemp(prefix="gavel-readonly-"))
    try:
        if os.geteuid() == 0:
            os.chown(directory, 65534, 65534)  # the child drops to `nobody` (see the script)
        path = directory / "gavel.db"
        child = subprocess.run([sys.executable, "-c", _READ_ONLY_FILE, sqlite_url(path), str(path)],
                               capture_output=True, text=True, timeout=60, cwd=directory)
        assert child.returncode == 0, child.stderr
        refusal, recovered = child.stdout.strip().splitlines()
        assert refusal.startswith("the database is unavailable:") and "readonly" in refusal
        assert recovered == "recovered"
    finally:
        shutil.rmtree(directory)


async def test_a_missing_sqlite_database_is_unavailable_and_not_created(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "never-migrated" / "gavel.db")
    store = SqlStore(url)
    try:
        with pytest.raises(StoreUnavailable, match="unable to open database file"):
            await store.write(lambda uow: uow.tenants.add(tenant()))
        with pytest.raises(StoreUnavailable):
            store.run_sync(lambda uow: uow.tenants.get("ten_a"))
        assert await store.ping() is False
        assert not sqlite_path(url).parent.exists()
    finally:
        await store.close()


async def test_an_unreachable_postgresql_is_unavailable() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    store = SqlStore(url)
    try:
        with pytest.raises(StoreUnavailable, match="the database is unavailable"):
            await store.write(lambda uow: uow.tenants.add(tenant()))
        with pytest.raises(StoreUnavailable):
            await store.read(lambda uow: uow.tenants.get("ten_a"))
        with pytest.raises(StoreUnavailable):
            store.run_sync(lambda uow: uow.tenants.get("ten_a"))
        assert await store.ping() is False
    finally:
        await store.close()
    with pytest.raises(StoreUnavailable):
        migrate(url)


@pytest.mark.postgres
async def test_postgresql_connections_killed_under_the_store_are_replaced(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    application = f"gavel_test_{uuid.uuid4().hex[:12]}"
    url = make_url(postgres_url).update_query_dict({"application_name": application}).render_as_string(
        hide_password=False
    )
    migrate(url)
    store = SqlStore(url)
    admin = create_engine(os.environ["GAVEL_TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    try:
        await store.write(lambda uow: uow.tenants.add(tenant("ten_before")))
        assert await store.read(lambda uow: uow.tenants.get("ten_before")) is not None
        with admin.connect() as connection:
            killed = connection.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application},
            ).scalar_one()
        assert killed >= 2  # the writer's and a reader's connection
        await store.write(lambda uow: uow.tenants.add(tenant("ten_after")))  # pre-ping reconnects
        assert await store.read(lambda uow: uow.tenants.get("ten_after")) is not None
        assert await store.ping() is True
    finally:
        await store.close()
        admin.dispose()


async def test_sqlite_commits_reach_the_database_file_without_any_commit_checkpointing(tmp_path: Path) -> None:
    """The writer's connection never checkpoints (no commit stalls on the fsyncs of one); the
    store's checkpointer thread moves committed WAL frames into the database file meanwhile, and
    the WAL is reused from its start rather than growing with every write."""
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    store = SqlStore(url)
    try:
        with store._writer_engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
        for round_ in range(20):
            await asyncio.gather(*(store.write(lambda uow, n=n, r=round_: uow.tenants.add(tenant(f"ten_{r}_{n}")),
                                               chain=CHAIN) for n in range(100)))
        await asyncio.sleep(0.5)
        # A copy of the database file alone, without its WAL, already holds the committed rows.
        alone = tmp_path / "alone.db"
        shutil.copyfile(tmp_path / "gavel.db", alone)
        with contextlib.closing(__import__("sqlite3").connect(alone)) as copy:
            assert copy.execute("SELECT count(*) FROM tenants").fetchone()[0] == 2000
        wal = tmp_path / "gavel.db-wal"
        assert wal.stat().st_size < 8 * 1024 * 1024, "the WAL keeps growing instead of restarting"
    finally:
        await store.close()


async def test_prepared_statements_report_database_trouble_like_core_statements(tmp_path: Path) -> None:
    """A driver error raised by a prepared statement is classified as before: a unique key taken
    is a Conflict, a database that cannot be written is StoreUnavailable."""
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    store = SqlStore(url)
    try:
        await store.write(lambda uow: uow.tenants.add(tenant()), chain=CHAIN)
        with pytest.raises(Conflict):
            await store.write(lambda uow: uow.tenants.add(tenant()), chain=CHAIN)

        def broken(uow):
            from gavel.adapters.db import prepared

            prepared.run(uow.tenants._connection, "INSERT INTO no_such_table VALUES (?)", (1,))

        with pytest.raises(StoreUnavailable, match="no such table"):
            await store.write(broken, chain=CHAIN)
        assert await store.read(lambda uow: uow.tenants.get("ten_a")) is not None  # the store goes on
    finally:
        await store.close()


async def test_sqlite_write_lock_held_elsewhere_never_stalls_the_loop(tmp_path: Path) -> None:
    """SQLite batches run on the loop; when another process holds the write lock, the batch is
    handed to the writer thread, which waits for the lock while the loop goes on serving."""
    import sqlite3

    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    store = SqlStore(url)
    other = sqlite3.connect(tmp_path / "gavel.db", isolation_level=None)
    try:
        await store.write(lambda uow: uow.tenants.add(tenant("ten_before")), chain=CHAIN)
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        other.execute("INSERT INTO tenants (tenant_id, name, created_at) VALUES ('ten_other', 'other', 0)")
        writes = [asyncio.ensure_future(store.write(lambda uow, n=n: uow.tenants.add(tenant(f"ten_{n}")),
                                                    chain=CHAIN)) for n in range(5)]
        ticks = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.5:  # the loop keeps turning while the lock is held
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 20
        assert not any(write.done() for write in writes)
        other.execute("COMMIT")
        await asyncio.wait_for(asyncio.gather(*writes), 5)
        names = await store.read(lambda uow: [uow.tenants.get(f"ten_{n}") for n in range(5)])
        assert all(names)
        assert await store.read(lambda uow: uow.tenants.get("ten_other")) is not None
        await store.write(lambda uow: uow.tenants.add(tenant("ten_after")), chain=CHAIN)  # back on the loop
    finally:
        other.close()
        await store.close()


def test_a_store_used_from_two_event_loops_writes_from_both(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    store = SqlStore(url)

    async def first() -> None:
        await store.write(lambda uow: uow.tenants.add(tenant("ten_first_loop")), chain=CHAIN)

    asyncio.run(first())

    async def second() -> None:
        await store.write(lambda uow: uow.tenants.add(tenant("ten_second_loop")), chain=CHAIN)
        assert await store.read(lambda uow: uow.tenants.get("ten_first_loop")) is not None
        await store.close()

    asyncio.run(second())


async def test_a_wal_that_readers_let_grow_is_cut_back_once_they_finish(tmp_path: Path, monkeypatch) -> None:
    import sqlite3

    from gavel.adapters.db import store as store_module

    monkeypatch.setattr(store_module, "WAL_TRUNCATE_BYTES", 256 * 1024)
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    store = SqlStore(url)
    reader = sqlite3.connect(tmp_path / "gavel.db", isolation_level=None)
    wal = tmp_path / "gavel.db-wal"
    try:
        await store.write(lambda uow: uow.tenants.add(tenant("ten_first")), chain=CHAIN)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM tenants").fetchone()  # holds a snapshot: PASSIVE cannot finish
        for round_ in range(10):
            await asyncio.gather(*(store.write(lambda uow, n=n, r=round_: uow.tenants.add(tenant(f"t_{r}_{n}")),
                                               chain=CHAIN) for n in range(100)))
        await asyncio.sleep(0.3)
        assert wal.stat().st_size > 256 * 1024  # grown past the limit while the reader looks
        reader.execute("COMMIT")
        deadline = time.monotonic() + 10
        while wal.stat().st_size > 256 * 1024 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert wal.stat().st_size <= 256 * 1024
        assert await store.read(lambda uow: uow.tenants.get("t_9_99")) is not None
    finally:
        reader.close()
        await store.close()


async def test_the_health_ping_answers_while_every_reader_is_busy(store: SqlStore) -> None:
    gate = threading.Event()
    busy = [asyncio.ensure_future(store.read(lambda uow: gate.wait(10))) for _ in range(4)]  # the whole pool, stuck
    try:
        assert await store.ping() is True
        assert not any(read.done() for read in busy)  # answered while they were stuck, not after them
    finally:
        gate.set()
        await asyncio.gather(*busy)
