"""Ports: what the use cases need from storage (and from the policy compiler), as small Protocols.

Repositories are synchronous and run inside one transaction (a `UnitOfWork`). The store runs
write units on its writer — which may batch several units into one database transaction
(group commit), each unit in its own savepoint, so one unit's failure never undoes another's —
and read units on a reader pool. Every method filters on tenant and environment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

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
from gavel.engine.engine import CompiledEngine
from gavel.lang.diagnostics import Diagnostic

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the write; callers answer UNAVAILABLE."""


class Conflict(Exception):
    """A uniqueness constraint was violated (the record already exists)."""


class RetryUnit(Exception):
    """The unit lost a race with another writer (another replica committed first). The store
    rolls the unit back and runs it again, and the second run sees what the winner wrote."""


class TenantRepo(Protocol):
    def add(self, tenant: Tenant) -> None: ...  # raises Conflict on a duplicate id or name
    def get(self, tenant_id: str) -> Tenant | None: ...
    def get_by_name(self, name: str) -> Tenant | None: ...
    def ids(self) -> list[str]: ...  # every tenant's id


class ApiKeyRepo(Protocol):
    def add(self, key: ApiKeyRecord) -> None: ...
    def get(self, key_id: str) -> ApiKeyRecord | None: ...
    def list(self, tenant_id: str | None, environment: str | None, include_revoked: bool,
             limit: int, after_key_id: str | None) -> Sequence[ApiKeyRecord]: ...  # ordered by key_id
    def revoke(self, key_id: str, at: datetime) -> bool: ...  # False if unknown or already revoked
    def revoke_matching(self, tenant_id: str, description: str, at: datetime) -> int: ...


class TenantSettingsRepo(Protocol):
    def get(self, tenant_id: str, environment: str) -> TenantSettings | None: ...  # None: the defaults
    def put(self, settings: TenantSettings) -> None: ...  # insert or replace


class AgentRepo(Protocol):
    def add(self, agent: AgentRecord) -> None: ...  # raises Conflict if (tenant, env, agent_id) exists
    def get(self, tenant_id: str, environment: str, agent_id: str) -> AgentRecord | None: ...
    def list(self, tenant_id: str, environment: str, status: str | None, limit: int,
             after_agent_id: str | None) -> Sequence[AgentRecord]: ...  # ordered by agent_id
    def update(self, agent: AgentRecord) -> None: ...


class DecisionRepo(Protocol):
    def add(self, decision: DecisionRecord) -> None: ...
    def get(self, tenant_id: str, environment: str, decision_id: str) -> DecisionRecord | None: ...
    def set_state(self, tenant_id: str, environment: str, decision_id: str, state: str,
                  result: dict) -> None: ...
    def bind_token(self, tenant_id: str, environment: str, decision_id: str, jti: str, amount: Decimal | None,
                   currency: str | None) -> None: ...
    def between(self, tenant_id: str, environment: str, start: datetime | None, end: datetime | None,
                after: tuple[datetime, str] | None, limit: int) -> list[DecisionRecord]: ...


class TokenRepo(Protocol):
    def add(self, token: TokenRecord) -> None: ...
    def get(self, jti: str) -> TokenRecord | None: ...
    def consume(self, jti: str, at: datetime) -> bool: ...  # issued → consumed; False otherwise
    def revoke(self, jti: str, at: datetime) -> bool: ...  # issued → revoked; False otherwise
    def expire(self, jti: str) -> bool: ...  # issued → expired (swept after its expiry); False otherwise
    def expired_issued(self, now: datetime, limit: int) -> Sequence[TokenRecord]: ...


class SpendRepo(Protocol):
    def total(self, tenant_id: str, environment: str, agent_id: str, period: str) -> Decimal: ...
    def add(self, tenant_id: str, environment: str, agent_id: str, period: str, delta: Decimal) -> None: ...
    def add_reservation(self, reservation: Reservation) -> None: ...
    def get_reservation(self, decision_id: str) -> Reservation | None: ...
    def set_reservation(self, decision_id: str, state: str, committed_amount: Decimal | None) -> None: ...


class ExecutionRepo(Protocol):
    def add(self, execution: ExecutionRecord) -> None: ...  # raises Conflict if the decision has one
    def get(self, tenant_id: str, environment: str, decision_id: str) -> ExecutionRecord | None: ...


class IdempotencyRepo(Protocol):
    def get(self, tenant_id: str, environment: str, operation: str, key: str) -> IdempotencyRecord | None: ...
    def put(self, record: IdempotencyRecord) -> None: ...  # raises Conflict if the key exists


class LedgerRepo(Protocol):
    def head(self, tenant_id: str, environment: str, lock: bool = True) -> tuple[int, bytes] | None: ...
    def append(self, event: LedgerEvent) -> None: ...
    def events(self, tenant_id: str, environment: str, from_sequence: int, limit: int) -> list[LedgerEvent]: ...
    def hashes(self, tenant_id: str, environment: str, from_sequence: int, to_sequence: int) -> list[bytes]: ...
    def for_subject(self, tenant_id: str, environment: str, subject: str) -> list[LedgerEvent]: ...
    def chains(self) -> list[tuple[str, str, int]]: ...  # (tenant, environment, last sequence)


class CheckpointRepo(Protocol):
    def add(self, checkpoint: CheckpointRecord) -> bool: ...  # False if that size exists already
    def latest(self, tenant_id: str, environment: str) -> CheckpointRecord | None: ...
    def all(self, tenant_id: str, environment: str) -> list[CheckpointRecord]: ...


class ApprovalRepo(Protocol):
    def add(self, approval: ApprovalRecord) -> None: ...
    def get(self, tenant_id: str, environment: str, approval_id: str) -> ApprovalRecord | None: ...
    def for_decision(self, tenant_id: str, environment: str, decision_id: str) -> ApprovalRecord | None: ...
    def update(self, approval: ApprovalRecord, expected_version: int) -> bool: ...  # False: someone else won
    def list(self, tenant_id: str, environment: str, status: str | None, roles: Sequence[str] | None,
             agent_id: str | None, limit: int, after_id: str | None) -> list[ApprovalRecord]: ...
    def due(self, now: datetime, limit: int) -> list[ApprovalRecord]: ...  # pending, due_at ≤ now


class BundleRepo(Protocol):
    def put(self, bundle: StoredBundle) -> None: ...  # content-addressed: a second put is a no-op
    def get(self, tenant_id: str, bundle_hash: str) -> StoredBundle | None: ...
    def activate(self, tenant_id: str, environment: str, bundle_hash: str, version: str, at: datetime,
                 action: str, by: str) -> Activation: ...
    def history(self, tenant_id: str, environment: str, limit: int, before: int | None) -> list[Activation]: ...
    def latest_everywhere(self) -> list[Activation]: ...


class WebhookRepo(Protocol):
    def add(self, endpoint: WebhookEndpoint) -> None: ...
    def get(self, tenant_id: str, environment: str, endpoint_id: str) -> WebhookEndpoint | None: ...
    def by_id(self, endpoint_id: str) -> WebhookEndpoint | None: ...
    def list(self, tenant_id: str, environment: str) -> list[WebhookEndpoint]: ...
    def update(self, endpoint: WebhookEndpoint) -> None: ...
    def delete(self, tenant_id: str, environment: str, endpoint_id: str) -> bool: ...


class DeliveryRepo(Protocol):
    def add(self, delivery: Delivery) -> None: ...
    def get(self, delivery_id: str) -> Delivery | None: ...
    def recent(self, endpoint_id: str, limit: int) -> list[Delivery]: ...
    def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]: ...  # leased, due
    def save(self, delivery: Delivery) -> None: ...


class UnitOfWork(Protocol):
    tenants: TenantRepo
    keys: ApiKeyRepo
    settings: TenantSettingsRepo
    agents: AgentRepo
    decisions: DecisionRepo
    tokens: TokenRepo
    spend: SpendRepo
    executions: ExecutionRepo
    idempotency: IdempotencyRepo
    ledger: LedgerRepo
    approvals: ApprovalRepo
    bundles: BundleRepo
    webhooks: WebhookRepo
    deliveries: DeliveryRepo
    checkpoints: CheckpointRepo


class Store(Protocol):
    # `chain`: the (tenant, environment) whose ledger the unit appends to; a unit naming none
    # that appends to several chains must visit them in ascending (tenant, environment) order.
    def write(self, unit: Callable[[UnitOfWork], T], *, chain: tuple[str, str] | None = None) -> Awaitable[T]: ...
    def read(self, unit: Callable[[UnitOfWork], T]) -> Awaitable[T]: ...
    def run_sync(self, unit: Callable[[UnitOfWork], T]) -> T: ...  # CLI use: one committed transaction
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class CompileReport:
    """What compiling policy text found: `ok` (no error), and its errors, or else its warnings."""

    ok: bool
    diagnostics: tuple[Diagnostic, ...]
    rendered: str = ""  # the errors as `gavel check` prints them; empty when ok


class PolicyCompiler(Protocol):
    """Compiles tenants' policy text away from the event loop every tenant shares.

    `tenant_id` None is the server itself (the --watch reload): no per-tenant limit. Both raise
    CompileLimitExceeded when the tenant already compiles as much as allowed at once, and
    CompileTimeExceeded past the time limit."""

    async def check(self, tenant_id: str | None, files: Mapping[str, str], *,
                    analysis: bool = False) -> CompileReport: ...  # analysis: also W30x warnings
    async def compile(self, tenant_id: str | None, files: Mapping[str, str]) -> CompiledEngine: ...  # PolicyError
