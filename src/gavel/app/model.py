"""Domain records of the service: plain frozen dataclasses, no ORM, no protobuf.

Environments are "test" and "live"; every tenant-owned record carries both the tenant and the
environment, and every repository query filters on both, so nothing crosses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

ENVIRONMENTS = ("test", "live")
AGENT_STATUSES = ("active", "paused", "locked")
MODES = ("monitor", "warn", "enforce", "strict")
OUTCOMES = ("allow", "deny", "require_approval")
DECISION_STATES = ("approved", "denied", "pending_approval", "expired", "executed", "execution_failed")
TOKEN_STATES = ("issued", "consumed", "revoked", "expired")
RESERVATION_STATES = ("reserved", "committed", "released")


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str  # the public part of the key, e.g. "k_7Q2…"; the secret is never stored
    tenant_id: str | None  # None for platform operator keys (gk_admin_…)
    environment: str | None  # "test" | "live"; None for platform operator keys
    roles: tuple[str, ...]  # () means the owner's admin key
    principal: str
    description: str
    secret_hash: bytes  # SHA-256 of the whole key text
    created_at: datetime
    revoked_at: datetime | None = None
    agents: tuple[str, ...] = ()  # an agent key bound to these agent ids; () acts for any agent


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """What a tenant's operator chose for one environment."""

    tenant_id: str
    environment: str
    minimum_mode: str  # one of MODES: no decision in this environment runs in a looser mode
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class AgentRecord:
    tenant_id: str
    environment: str
    agent_id: str
    name: str = ""
    owner: str = ""
    control_tier: str = ""
    risk_level: str = ""
    allowed_actions: tuple[str, ...] = ()
    daily_limit: Decimal | None = None
    monthly_limit: Decimal | None = None
    human_sponsor_id: str = ""
    default_mode: str | None = None  # one of MODES, or None for the service default
    status: str = "active"
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision_id: str
    tenant_id: str
    environment: str
    agent_id: str
    created_at: datetime
    outcome: str
    state: str
    mode: str
    enforced: bool
    reason_code: str
    bundle_hash: str
    request: dict[str, Any]  # the request as the engine saw it (JSON-ready, decimals as strings)
    facts: dict[str, Any]  # the facts as the engine saw them
    result: dict[str, Any]  # everything needed to answer GetDecision exactly as Decide did
    token_jti: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    correlation_id: str = ""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    jti: str
    tenant_id: str
    environment: str
    decision_id: str
    agent_id: str
    args_hash: str
    issued_at: datetime
    expires_at: datetime
    state: str = "issued"
    consumed_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """An allowed decision's amount held against the agent's daily and monthly budget."""

    decision_id: str
    tenant_id: str
    environment: str
    agent_id: str
    amount: Decimal
    day: str  # "2026-11-22" (UTC)
    month: str  # "2026-11"
    state: str = "reserved"
    committed_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    decision_id: str
    tenant_id: str
    environment: str
    status: str  # "succeeded" | "failed"
    executed_at: datetime
    amount: Decimal | None
    currency: str | None
    external_transaction_id: str
    error_code: str
    error_message: str
    reconciliation_status: str  # "matched" | "mismatched" | "failed"
    authorized_amount: Decimal | None
    executed_amount: Decimal | None
    variance: Decimal | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    tenant_id: str  # "" for platform operator calls
    environment: str  # "" for platform operator calls
    operation: str  # e.g. "DecisionService.Decide"
    key: str
    request_hash: str  # "sha256:<hex>" of the canonical request without the key
    response: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One link of a tenant + environment's hash chain (and one leaf of its Merkle tree)."""

    tenant_id: str
    environment: str
    sequence: int  # from 1
    event_id: str
    type: str
    subject: str  # what the event is about (a decision id, an agent id, a key id, …)
    payload_json: str  # the exact canonical JSON that was hashed
    prev_hash: bytes
    hash: bytes  # SHA-256(prev_hash ‖ payload bytes)
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A signed tree head over the first `tree_size` events of one chain."""

    tenant_id: str
    environment: str
    tree_size: int
    root_hash: bytes
    created_at: datetime
    key_id: str
    signature: bytes
    note: str  # C2SP signed note around a tlog-checkpoint body
    origin: str


APPROVAL_STATUSES = ("pending", "approved", "denied", "modified", "expired")


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A human approval task for one decision (see `gavel.app.approvals` for its state machine)."""

    approval_id: str
    tenant_id: str
    environment: str
    decision_id: str
    agent_id: str
    status: str
    role: str  # routed to now (after escalations)
    original_role: str
    approvals_required: int
    approvers: tuple[str, ...]  # principals who approved, in order
    due_at: datetime
    timeout_seconds: int  # the route's timeout, to re-arm after an escalation on timeout
    on_timeout: str  # deny | allow | escalate
    escalate_to: str
    escalated_on_timeout: bool
    action: dict[str, Any]  # the action as requested (bound-action form)
    modified_action: dict[str, Any] | None
    reason_code: str
    requester_id: str
    human_sponsor_id: str
    steps: tuple[dict[str, Any], ...]
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class StoredBundle:
    """A published bundle archive, kept per tenant by content hash."""

    tenant_id: str
    bundle_hash: str
    archive: bytes
    manifest: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Activation:
    """A bundle becoming active in an environment (publish, promote or rollback)."""

    tenant_id: str
    environment: str
    sequence: int  # from 1 per tenant + environment
    bundle_hash: str
    version: str
    activated_at: datetime
    action: str  # publish | promote | rollback
    by: str


# What a webhook may subscribe to: exactly what gavel.app.webhooks emits (`incident.opened` returns
# with drift detection, when something emits it).
WEBHOOK_EVENTS = ("authorization.decided", "authorization.finalized", "approval.requested", "approval.recorded",
                  "approval.resolved", "execution.confirmed", "execution.failed", "reconciliation.completed",
                  "agent.status_changed")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "dead")


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    endpoint_id: str
    tenant_id: str
    environment: str
    url: str
    events: tuple[str, ...]
    enabled: bool
    description: str
    secret: str  # the HMAC key; shown to the caller once, kept to sign deliveries
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one endpoint: the outbox row, written in the transaction of its change."""

    delivery_id: str  # stable across retries (X-Gavel-Delivery-Id)
    tenant_id: str
    environment: str
    endpoint_id: str
    event: str
    body: str  # the exact JSON body POSTed: {"id", "type", "created_at", "data"}
    status: str  # pending | delivered | failed | dead
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    delivered_at: datetime | None = None
    lease_until: datetime | None = None  # a worker holds it until then (one delivery per attempt)
