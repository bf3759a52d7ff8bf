"""The repository ports of `gavel.app.ports`, as Core statements on one `Connection`.

They never commit: the store owns the transaction. Inserts use `ON CONFLICT DO NOTHING` and
raise `Conflict` when no row went in, so a duplicate leaves the enclosing transaction intact
(no error is raised inside the database, on SQLite or PostgreSQL). State changes are
conditional UPDATEs whose row count tells the one winner among concurrent callers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Table, and_, or_, select, update
from sqlalchemy import func as sa_func

from gavel.adapters.db import prepared, tables
from gavel.app.model import (
    Activation,
    AgentRecord,
    ApiKeyRecord,
    ApprovalRecord,
    CheckpointRecord,
    DecisionRecord,
    Delivery,
    ExecutionRecord,
    IdempotencyRecord,
    LedgerEvent,
    Reservation,
    StoredBundle,
    Tenant,
    TenantSettings,
    TokenRecord,
    WebhookEndpoint,
)
from gavel.app.ports import Conflict, RetryUnit

R = TypeVar("R")

# Sums of money are exact or an error, never rounded to the default 28 digits.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])


def _values(record: Any) -> dict[str, Any]:
    return {field.name: getattr(record, field.name) for field in fields(record)}


def _record(cls: type[R], row: Row[Any] | None) -> R | None:
    return None if row is None else cls(**row._mapping)


def _insert_unique(connection: Connection, table: Table, values: dict[str, Any], what: str) -> None:
    if not prepared.insert_unique(connection, table, values):
        raise Conflict(f"{what} already exists")


def _get(cls: type[R], connection: Connection, table: Table, **keys: Any) -> R | None:
    row = prepared.select_one(connection, table, keys)
    return None if row is None else cls(**row)


class SqlTenantRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, tenant: Tenant) -> None:
        _insert_unique(self._connection, tables.tenants, _values(tenant), f"tenant `{tenant.tenant_id}`")

    def get(self, tenant_id: str) -> Tenant | None:
        return _get(Tenant, self._connection, tables.tenants, tenant_id=tenant_id)

    def get_by_name(self, name: str) -> Tenant | None:
        row = self._connection.execute(select(tables.tenants).where(tables.tenants.c.name == name)).first()
        return _record(Tenant, row)

    def ids(self) -> list[str]:
        return list(self._connection.execute(select(tables.tenants.c.tenant_id)).scalars())


class SqlApiKeyRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, key: ApiKeyRecord) -> None:
        _insert_unique(self._connection, tables.api_keys, _values(key), f"api key `{key.key_id}`")

    def get(self, key_id: str) -> ApiKeyRecord | None:
        return _get(ApiKeyRecord, self._connection, tables.api_keys, key_id=key_id)

    def list(
        self, tenant_id: str | None, environment: str | None, include_revoked: bool, limit: int,
        after_key_id: str | None,
    ) -> Sequence[ApiKeyRecord]:
        """Keys in key_id order; `None` for the tenant or the environment means any (a platform
        admin's view: every key, or one tenant's keys in both environments)."""
        c = tables.api_keys.c
        query = select(tables.api_keys)
        if tenant_id is not None:
            query = query.where(c.tenant_id == tenant_id)
        if environment is not None:
            query = query.where(c.environment == environment)
        if not include_revoked:
            query = query.where(c.revoked_at.is_(None))
        if after_key_id is not None:
            query = query.where(c.key_id > after_key_id)
        rows = self._connection.execute(query.order_by(c.key_id).limit(limit))
        return [ApiKeyRecord(**row._mapping) for row in rows]

    def revoke(self, key_id: str, at: datetime) -> bool:
        c = tables.api_keys.c
        statement = update(tables.api_keys).where(c.key_id == key_id, c.revoked_at.is_(None)).values(revoked_at=at)
        return self._connection.execute(statement).rowcount == 1

    def revoke_matching(self, tenant_id: str, description: str, at: datetime) -> int:
        """Revoke the tenant's live keys (in both environments) that carry `description`."""
        c = tables.api_keys.c
        statement = (
            update(tables.api_keys)
            .where(c.tenant_id == tenant_id, c.description == description, c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return self._connection.execute(statement).rowcount


class SqlTenantSettingsRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, tenant_id: str, environment: str) -> TenantSettings | None:
        return _get(TenantSettings, self._connection, tables.tenant_settings, tenant_id=tenant_id,
                    environment=environment)

    def put(self, settings: TenantSettings) -> None:
        if prepared.insert_unique(self._connection, tables.tenant_settings, _values(settings)):
            return
        c = tables.tenant_settings.c
        self._connection.execute(update(tables.tenant_settings)
                                 .where(c.tenant_id == settings.tenant_id, c.environment == settings.environment)
                                 .values(minimum_mode=settings.minimum_mode, updated_at=settings.updated_at,
                                         updated_by=settings.updated_by))


class SqlAgentRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, agent: AgentRecord) -> None:
        what = f"agent `{agent.agent_id}` in {agent.tenant_id}/{agent.environment}"
        _insert_unique(self._connection, tables.agents, _values(agent), what)

    def get(self, tenant_id: str, environment: str, agent_id: str) -> AgentRecord | None:
        return _get(AgentRecord, self._connection, tables.agents, tenant_id=tenant_id, environment=environment,
                    agent_id=agent_id)

    def list(
        self, tenant_id: str, environment: str, status: str | None, limit: int, after_agent_id: str | None
    ) -> Sequence[AgentRecord]:
        c = tables.agents.c
        query = select(tables.agents).where(c.tenant_id == tenant_id, c.environment == environment)
        if status is not None:
            query = query.where(c.status == status)
        if after_agent_id is not None:
            query = query.where(c.agent_id > after_agent_id)
        rows = self._connection.execute(query.order_by(c.agent_id).limit(limit))
        return [AgentRecord(**row._mapping) for row in rows]

    def update(self, agent: AgentRecord) -> None:
        """Replace every field of the agent; an unknown agent is left alone."""
        values = _values(agent)
        key = _agent_key(values.pop("tenant_id"), values.pop("environment"), values.pop("agent_id"))
        self._connection.execute(update(tables.agents).where(key).values(values))


def _agent_key(tenant_id: str, environment: str, agent_id: str) -> Any:
    c = tables.agents.c
    return and_(c.tenant_id == tenant_id, c.environment == environment, c.agent_id == agent_id)


class SqlDecisionRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, decision: DecisionRecord) -> None:
        _insert_unique(self._connection, tables.decisions, _values(decision), f"decision `{decision.decision_id}`")

    def get(self, tenant_id: str, environment: str, decision_id: str) -> DecisionRecord | None:
        return _get(DecisionRecord, self._connection, tables.decisions, decision_id=decision_id, tenant_id=tenant_id,
                    environment=environment)

    def between(self, tenant_id: str, environment: str, start: datetime | None, end: datetime | None,
                after: tuple[datetime, str] | None, limit: int) -> list[DecisionRecord]:
        """Decisions made in [start, end), oldest first, after the (created_at, id) cursor."""
        return _decisions_between(self._connection, tenant_id, environment, start, end, after, limit)

    def bind_token(self, tenant_id: str, environment: str, decision_id: str, jti: str, amount, currency) -> None:
        """Record the token an approval granted, and the (possibly modified) amount it authorises."""
        statement = (update(tables.decisions).where(_decision_key(tenant_id, environment, decision_id))
                     .values(token_jti=jti, amount=amount, currency=currency))
        self._connection.execute(statement)

    def set_state(self, tenant_id: str, environment: str, decision_id: str, state: str, result: dict) -> None:
        statement = (
            update(tables.decisions)
            .where(_decision_key(tenant_id, environment, decision_id))
            .values(state=state, result=result)
        )
        self._connection.execute(statement)


def _decisions_between(connection: Connection, tenant_id: str, environment: str, start: datetime | None,
                       end: datetime | None, after: tuple[datetime, str] | None, limit: int) -> list[DecisionRecord]:
    c = tables.decisions.c
    conditions = [c.tenant_id == tenant_id, c.environment == environment]
    if start is not None:
        conditions.append(c.created_at >= start)
    if end is not None:
        conditions.append(c.created_at < end)
    if after is not None:
        conditions.append(or_(c.created_at > after[0], and_(c.created_at == after[0], c.decision_id > after[1])))
    query = select(tables.decisions).where(*conditions).order_by(c.created_at, c.decision_id).limit(limit)
    return [DecisionRecord(**row._mapping) for row in connection.execute(query)]


def _decision_key(tenant_id: str, environment: str, decision_id: str) -> Any:
    c = tables.decisions.c
    return and_(c.tenant_id == tenant_id, c.environment == environment, c.decision_id == decision_id)


class SqlTokenRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, token: TokenRecord) -> None:
        _insert_unique(self._connection, tables.tokens, _values(token), f"token `{token.jti}`")

    def get(self, jti: str) -> TokenRecord | None:
        return _get(TokenRecord, self._connection, tables.tokens, jti=jti)

    def consume(self, jti: str, at: datetime) -> bool:
        return self._leave_issued(jti, state="consumed", consumed_at=at)

    def revoke(self, jti: str, at: datetime) -> bool:
        return self._leave_issued(jti, state="revoked", revoked_at=at)

    def expire(self, jti: str) -> bool:
        return self._leave_issued(jti, state="expired")

    def _leave_issued(self, jti: str, **values: Any) -> bool:
        # The row lock taken by the UPDATE makes a concurrent caller wait and then re-check the
        # state, so exactly one of them changes the row (and gets True).
        changed = prepared.update(self._connection, tables.tokens, values, {"jti": jti}, condition="state = 'issued'")
        return changed == 1

    def expired_issued(self, now: datetime, limit: int) -> Sequence[TokenRecord]:
        """Issued tokens whose expiry is at or before `now`, the oldest expiry first."""
        c = tables.tokens.c
        query = (
            select(tables.tokens)
            .where(c.state == "issued", c.expires_at <= now)
            .order_by(c.expires_at, c.jti)
            .limit(limit)
        )
        return [TokenRecord(**row._mapping) for row in self._connection.execute(query)]


class SqlSpendRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def total(self, tenant_id: str, environment: str, agent_id: str, period: str) -> Decimal:
        query = select(tables.spend_totals.c.amount).where(_spend_key(tenant_id, environment, agent_id, period))
        amount = self._connection.execute(query).scalar_one_or_none()
        return Decimal(0) if amount is None else amount

    def add(self, tenant_id: str, environment: str, agent_id: str, period: str, delta: Decimal) -> None:
        # Amounts are exact text, so the sum is made here, under the row lock (FOR UPDATE on
        # PostgreSQL; SQLite's single writer holds the whole database). A first add inserts the
        # row; if a concurrent transaction inserted it first, lock that row and add to it.
        key = _spend_key(tenant_id, environment, agent_id, period)
        locked = select(tables.spend_totals.c.amount).where(key).with_for_update()
        current = self._connection.execute(locked).scalar_one_or_none()
        if current is None:
            try:
                row = {"tenant_id": tenant_id, "environment": environment, "agent_id": agent_id, "period": period}
                _insert_unique(self._connection, tables.spend_totals, {**row, "amount": delta}, "spend total")
                return
            except Conflict:
                current = self._connection.execute(locked).scalar_one()
        new_total = _EXACT.add(current, delta)
        self._connection.execute(update(tables.spend_totals).where(key).values(amount=new_total))

    def add_reservation(self, reservation: Reservation) -> None:
        what = f"reservation for decision `{reservation.decision_id}`"
        _insert_unique(self._connection, tables.reservations, _values(reservation), what)

    def get_reservation(self, decision_id: str) -> Reservation | None:
        return _get(Reservation, self._connection, tables.reservations, decision_id=decision_id)

    def set_reservation(self, decision_id: str, state: str, committed_amount: Decimal | None) -> None:
        statement = (
            update(tables.reservations)
            .where(tables.reservations.c.decision_id == decision_id)
            .values(state=state, committed_amount=committed_amount)
        )
        self._connection.execute(statement)


def _spend_key(tenant_id: str, environment: str, agent_id: str, period: str) -> Any:
    c = tables.spend_totals.c
    return and_(c.tenant_id == tenant_id, c.environment == environment, c.agent_id == agent_id, c.period == period)


class SqlExecutionRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, execution: ExecutionRecord) -> None:
        what = f"execution of decision `{execution.decision_id}`"
        _insert_unique(self._connection, tables.executions, _values(execution), what)

    def get(self, tenant_id: str, environment: str, decision_id: str) -> ExecutionRecord | None:
        return _get(ExecutionRecord, self._connection, tables.executions, decision_id=decision_id,
                    tenant_id=tenant_id, environment=environment)


class SqlIdempotencyRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, tenant_id: str, environment: str, operation: str, key: str) -> IdempotencyRecord | None:
        return _get(IdempotencyRecord, self._connection, tables.idempotency_keys, tenant_id=tenant_id,
                    environment=environment, operation=operation, key=key)

    def put(self, record: IdempotencyRecord) -> None:
        what = f"idempotency key `{record.key}` for {record.operation}"
        _insert_unique(self._connection, tables.idempotency_keys, _values(record), what)


LEDGER_CHANNEL = "gavel_ledger"
_NOTIFY = "SELECT pg_notify(?, ?)"


def _head_row(connection: Connection, tenant_id: str, environment: str, lock: bool) -> dict[str, Any] | None:
    return prepared.select_one(connection, tables.ledger_heads, {"tenant_id": tenant_id, "environment": environment},
                               for_update=lock)


def lock_chain_heads(connection: Connection, chains: list[tuple[str, str]]) -> None:
    """Row-lock the heads of `chains` (those that exist yet) in the given order: a batch that takes
    every head it will append to first, before any other row, can never hold a row another batch
    waits for while it waits for that batch's head."""
    for tenant_id, environment in chains:
        _head_row(connection, tenant_id, environment, lock=True)


class SqlLedgerRepo:
    """The hash chain. `head(..., lock=True)` row-locks the chain head (FOR UPDATE on
    PostgreSQL; SQLite has one writer), so concurrent appends from any number of writers or
    replicas serialise on it and the chain never forks."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def head(self, tenant_id: str, environment: str, lock: bool = True) -> tuple[int, bytes] | None:
        row = _head_row(self._connection, tenant_id, environment, lock)
        if row is None and lock:
            # The chain's first append: create an empty head (or wait for the writer that just
            # did) so that there is a row to lock — otherwise two replicas could both write event 1.
            prepared.insert_unique(self._connection, tables.ledger_heads, {
                "tenant_id": tenant_id, "environment": environment, "last_sequence": 0, "last_hash": bytes(32)})
            row = _head_row(self._connection, tenant_id, environment, lock)
        return None if row is None else (int(row["last_sequence"]), bytes(row["last_hash"]))

    def append(self, event: LedgerEvent) -> None:
        # Appends are on every state change's path: prepared statements (see `prepared`).
        if not prepared.insert_unique(self._connection, tables.ledger_events, _values(event)):
            raise Conflict(f"event {event.sequence} of {event.tenant_id}/{event.environment} exists")
        moved = prepared.update(self._connection, tables.ledger_heads,
                                {"last_sequence": event.sequence, "last_hash": event.hash},
                                {"tenant_id": event.tenant_id, "environment": event.environment})
        if moved != 1:
            prepared.insert_unique(self._connection, tables.ledger_heads, {
                "tenant_id": event.tenant_id, "environment": event.environment,
                "last_sequence": event.sequence, "last_hash": event.hash})
        if self._connection.dialect.name == "postgresql":  # wake every replica's streams at commit
            prepared.run(self._connection, _NOTIFY, (LEDGER_CHANNEL, f"{event.tenant_id}/{event.environment}"))

    def events(self, tenant_id: str, environment: str, from_sequence: int, limit: int) -> list[LedgerEvent]:
        c = tables.ledger_events.c
        query = (select(tables.ledger_events)
                 .where(c.tenant_id == tenant_id, c.environment == environment, c.sequence >= from_sequence)
                 .order_by(c.sequence).limit(limit))
        return [_event(row) for row in self._connection.execute(query)]

    def hashes(self, tenant_id: str, environment: str, from_sequence: int, to_sequence: int) -> list[bytes]:
        """Event hashes of sequences from..to inclusive, in order (the Merkle leaves)."""
        c = tables.ledger_events.c
        query = (select(c.hash).where(c.tenant_id == tenant_id, c.environment == environment,
                                      c.sequence >= from_sequence, c.sequence <= to_sequence)
                 .order_by(c.sequence))
        return [bytes(row[0]) for row in self._connection.execute(query)]

    def for_subject(self, tenant_id: str, environment: str, subject: str) -> list[LedgerEvent]:
        c = tables.ledger_events.c
        query = (select(tables.ledger_events)
                 .where(c.tenant_id == tenant_id, c.environment == environment, c.subject == subject)
                 .order_by(c.sequence))
        return [_event(row) for row in self._connection.execute(query)]

    def chains(self) -> list[tuple[str, str, int]]:
        c = tables.ledger_heads.c
        rows = self._connection.execute(select(c.tenant_id, c.environment, c.last_sequence))
        return [(r[0], r[1], int(r[2])) for r in rows]


def _event(row: Row[Any]) -> LedgerEvent:
    m = dict(row._mapping)
    m["prev_hash"], m["hash"] = bytes(m["prev_hash"]), bytes(m["hash"])
    return LedgerEvent(**m)


class SqlCheckpointRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, checkpoint: CheckpointRecord) -> bool:
        """Store a checkpoint; False if one of that size exists already (made by another writer)."""
        try:
            _insert_unique(self._connection, tables.ledger_checkpoints, _values(checkpoint), "checkpoint")
        except Conflict:
            return False
        return True

    def latest(self, tenant_id: str, environment: str) -> CheckpointRecord | None:
        c = tables.ledger_checkpoints.c
        query = (select(tables.ledger_checkpoints).where(c.tenant_id == tenant_id, c.environment == environment)
                 .order_by(c.tree_size.desc()).limit(1))
        return _checkpoint(self._connection.execute(query).first())

    def all(self, tenant_id: str, environment: str) -> list[CheckpointRecord]:
        c = tables.ledger_checkpoints.c
        query = (select(tables.ledger_checkpoints).where(c.tenant_id == tenant_id, c.environment == environment)
                 .order_by(c.tree_size))
        return [_checkpoint(row) for row in self._connection.execute(query)]


def _checkpoint(row: Row[Any] | None) -> CheckpointRecord | None:
    if row is None:
        return None
    m = dict(row._mapping)
    m["root_hash"], m["signature"] = bytes(m["root_hash"]), bytes(m["signature"])
    return CheckpointRecord(**m)


class SqlApprovalRepo:
    """Approval tasks. `update` is optimistic: it applies only if the stored version is the one
    the caller read, so of two concurrent resolves (from any replica) exactly one wins."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    @staticmethod
    def _row(a: ApprovalRecord) -> dict[str, Any]:
        values = _values(a)
        values["steps"] = {"steps": list(a.steps)}
        return values

    @staticmethod
    def _record(row: Row[Any] | None) -> ApprovalRecord | None:
        if row is None:
            return None
        m = dict(row._mapping)
        m["steps"] = tuple(m["steps"].get("steps", []))
        return ApprovalRecord(**m)

    def add(self, approval: ApprovalRecord) -> None:
        _insert_unique(self._connection, tables.approvals, self._row(approval), f"approval `{approval.approval_id}`")

    def get(self, tenant_id: str, environment: str, approval_id: str) -> ApprovalRecord | None:
        c = tables.approvals.c
        query = select(tables.approvals).where(c.tenant_id == tenant_id, c.environment == environment,
                                               c.approval_id == approval_id)
        return self._record(self._connection.execute(query).first())

    def for_decision(self, tenant_id: str, environment: str, decision_id: str) -> ApprovalRecord | None:
        c = tables.approvals.c
        query = select(tables.approvals).where(c.tenant_id == tenant_id, c.environment == environment,
                                               c.decision_id == decision_id)
        return self._record(self._connection.execute(query).first())

    def update(self, approval: ApprovalRecord, expected_version: int) -> bool:
        c = tables.approvals.c
        values = self._row(approval)
        statement = (update(tables.approvals)
                     .where(c.approval_id == approval.approval_id, c.version == expected_version)
                     .values(**values).execution_options(preserve_rowcount=True))
        return self._connection.execute(statement).rowcount == 1

    def list(self, tenant_id: str, environment: str, status: str | None, roles: Sequence[str] | None,
             agent_id: str | None, limit: int, after_id: str | None) -> list[ApprovalRecord]:
        c = tables.approvals.c
        conditions = [c.tenant_id == tenant_id, c.environment == environment]
        if status:
            conditions.append(c.status == status)
        if roles is not None:
            conditions.append(c.role.in_(list(roles)))
        if agent_id:
            conditions.append(c.agent_id == agent_id)
        if after_id:
            conditions.append(c.approval_id > after_id)
        query = select(tables.approvals).where(*conditions).order_by(c.approval_id).limit(limit)
        return [self._record(row) for row in self._connection.execute(query)]

    def due(self, now: datetime, limit: int) -> list[ApprovalRecord]:
        c = tables.approvals.c
        query = (select(tables.approvals).where(c.status == "pending", c.due_at <= now)
                 .order_by(c.due_at, c.approval_id).limit(limit))
        return [self._record(row) for row in self._connection.execute(query)]


class SqlBundleRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def put(self, bundle: StoredBundle) -> None:
        """Store a bundle; storing the same tenant + hash again is a no-op (content-addressed)."""
        with contextlib.suppress(Conflict):
            _insert_unique(self._connection, tables.bundles, _values(bundle), "bundle")

    def get(self, tenant_id: str, bundle_hash: str) -> StoredBundle | None:
        c = tables.bundles.c
        row = self._connection.execute(
            select(tables.bundles).where(c.tenant_id == tenant_id, c.bundle_hash == bundle_hash)).first()
        if row is None:
            return None
        m = dict(row._mapping)
        m["archive"] = bytes(m["archive"])
        return StoredBundle(**m)

    def activate(self, tenant_id: str, environment: str, bundle_hash: str, version: str, at: datetime, action: str,
                 by: str) -> Activation:
        c = tables.activations.c
        last = self._connection.execute(
            select(c.sequence).where(c.tenant_id == tenant_id, c.environment == environment)
            .order_by(c.sequence.desc()).limit(1).with_for_update()).first()
        record = Activation(tenant_id, environment, (last[0] if last else 0) + 1, bundle_hash, version, at, action, by)
        try:
            _insert_unique(self._connection, tables.activations, _values(record), "activation")
        except Conflict:  # another replica activated at the same moment: run again after it
            raise RetryUnit("a concurrent activation took this sequence number") from None
        return record

    def history(self, tenant_id: str, environment: str, limit: int, before: int | None) -> list[Activation]:
        c = tables.activations.c
        conditions = [c.tenant_id == tenant_id, c.environment == environment]
        if before is not None:
            conditions.append(c.sequence < before)
        query = select(tables.activations).where(*conditions).order_by(c.sequence.desc()).limit(limit)
        return [Activation(**row._mapping) for row in self._connection.execute(query)]

    def latest_everywhere(self) -> list[Activation]:
        """The current activation of every tenant + environment that ever published."""
        c = tables.activations.c
        newest = (select(c.tenant_id, c.environment, sa_func.max(c.sequence).label("sequence"))
                  .group_by(c.tenant_id, c.environment).subquery())
        query = select(tables.activations).join(newest, and_(
            c.tenant_id == newest.c.tenant_id, c.environment == newest.c.environment,
            c.sequence == newest.c.sequence))
        return [Activation(**row._mapping) for row in self._connection.execute(query)]


class SqlWebhookRepo:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, endpoint: WebhookEndpoint) -> None:
        _insert_unique(self._connection, tables.webhook_endpoints, _values(endpoint), "webhook")

    def get(self, tenant_id: str, environment: str, endpoint_id: str) -> WebhookEndpoint | None:
        c = tables.webhook_endpoints.c
        row = self._connection.execute(select(tables.webhook_endpoints).where(
            c.tenant_id == tenant_id, c.environment == environment, c.endpoint_id == endpoint_id)).first()
        return _record(WebhookEndpoint, row)

    def by_id(self, endpoint_id: str) -> WebhookEndpoint | None:
        c = tables.webhook_endpoints.c
        return _record(WebhookEndpoint, self._connection.execute(
            select(tables.webhook_endpoints).where(c.endpoint_id == endpoint_id)).first())

    def list(self, tenant_id: str, environment: str) -> list[WebhookEndpoint]:
        rows = prepared.select_all(self._connection, tables.webhook_endpoints,
                                   {"tenant_id": tenant_id, "environment": environment},
                                   order_by="created_at, endpoint_id")
        return [WebhookEndpoint(**row) for row in rows]

    def update(self, endpoint: WebhookEndpoint) -> None:
        c = tables.webhook_endpoints.c
        self._connection.execute(update(tables.webhook_endpoints).where(c.endpoint_id == endpoint.endpoint_id)
                                 .values(**_values(endpoint)))

    def delete(self, tenant_id: str, environment: str, endpoint_id: str) -> bool:
        c = tables.webhook_endpoints.c
        statement = (tables.webhook_endpoints.delete()
                     .where(c.tenant_id == tenant_id, c.environment == environment, c.endpoint_id == endpoint_id)
                     .execution_options(preserve_rowcount=True))
        return self._connection.execute(statement).rowcount == 1


class SqlDeliveryRepo:
    """The outbox. `claim` leases due rows (FOR UPDATE SKIP LOCKED on PostgreSQL), so no two
    workers — threads or replicas — send the same delivery at the same time."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, delivery: Delivery) -> None:
        _insert_unique(self._connection, tables.webhook_deliveries, _values(delivery), "delivery")

    def get(self, delivery_id: str) -> Delivery | None:
        return _get(Delivery, self._connection, tables.webhook_deliveries, delivery_id=delivery_id)

    def recent(self, endpoint_id: str, limit: int) -> list[Delivery]:
        c = tables.webhook_deliveries.c
        query = (select(tables.webhook_deliveries).where(c.endpoint_id == endpoint_id)
                 .order_by(c.created_at.desc(), c.delivery_id.desc()).limit(limit))
        return [Delivery(**row._mapping) for row in self._connection.execute(query)]

    def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        c = tables.webhook_deliveries.c
        query = (select(tables.webhook_deliveries)
                 .where(c.status == "pending", c.next_attempt_at <= now,
                        or_(c.lease_until.is_(None), c.lease_until <= now))
                 .order_by(c.next_attempt_at, c.delivery_id).limit(limit)
                 .with_for_update(skip_locked=True))
        rows = [Delivery(**row._mapping) for row in self._connection.execute(query)]
        if rows:
            self._connection.execute(update(tables.webhook_deliveries)
                                     .where(c.delivery_id.in_([r.delivery_id for r in rows]))
                                     .values(lease_until=lease_until))
        return rows

    def save(self, delivery: Delivery) -> None:
        c = tables.webhook_deliveries.c
        self._connection.execute(update(tables.webhook_deliveries).where(c.delivery_id == delivery.delivery_id)
                                 .values(**_values(delivery)))
