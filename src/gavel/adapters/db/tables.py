"""The schema, as SQLAlchemy Core tables: one table per record in `gavel.app.model`.

Column names equal the record's field names, so rows map to records by name. Every
tenant-owned table leads its keys and indexes with (tenant_id, environment). There are no
foreign keys: the app writes a decision, its token and its reservation in one unit of work in
whatever order it likes, and a decision may name an agent that was never registered.
Migrations (`migrations/versions`) must produce exactly this schema; a test compares them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, LargeBinary, MetaData, PrimaryKeyConstraint, Table, Text

from gavel.adapters.db.columns import CanonicalJson, ExactDecimal, StringTuple, UtcMicroseconds

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    }
)

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", UtcMicroseconds, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=True),  # NULL for platform operator keys
    Column("environment", Text, nullable=True),
    Column("roles", StringTuple, nullable=False),
    Column("principal", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=False),
    Column("revoked_at", UtcMicroseconds, nullable=True),
    Column("agents", StringTuple, nullable=False),  # [] for a key that is not bound to agents
    Index(None, "tenant_id", "environment", "key_id"),
)

tenant_settings = Table(
    "tenant_settings",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("minimum_mode", Text, nullable=False),
    Column("updated_at", UtcMicroseconds, nullable=False),
    Column("updated_by", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "environment"),
)

agents = Table(
    "agents",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("control_tier", Text, nullable=False),
    Column("risk_level", Text, nullable=False),
    Column("allowed_actions", StringTuple, nullable=False),
    Column("daily_limit", ExactDecimal, nullable=True),
    Column("monthly_limit", ExactDecimal, nullable=True),
    Column("human_sponsor_id", Text, nullable=False),
    Column("default_mode", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=True),
    Column("updated_at", UtcMicroseconds, nullable=True),
    PrimaryKeyConstraint("tenant_id", "environment", "agent_id"),
    Index(None, "tenant_id", "environment", "status", "agent_id"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("enforced", Boolean, nullable=False),
    Column("reason_code", Text, nullable=False),
    Column("bundle_hash", Text, nullable=False),
    Column("request", CanonicalJson, nullable=False),
    Column("facts", CanonicalJson, nullable=False),
    Column("result", CanonicalJson, nullable=False),
    Column("token_jti", Text, nullable=True),
    Column("amount", ExactDecimal, nullable=True),
    Column("currency", Text, nullable=True),
    Column("correlation_id", Text, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("jti", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("decision_id", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("args_hash", Text, nullable=False),
    Column("issued_at", UtcMicroseconds, nullable=False),
    Column("expires_at", UtcMicroseconds, nullable=False),
    Column("state", Text, nullable=False),
    Column("consumed_at", UtcMicroseconds, nullable=True),
    Column("revoked_at", UtcMicroseconds, nullable=True),
    Index(None, "state", "expires_at"),  # the expiry sweep: issued tokens, oldest expiry first
)

spend_totals = Table(
    "spend_totals",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("period", Text, nullable=False),  # "2026-11-22" (a day) or "2026-11" (a month), UTC
    Column("amount", ExactDecimal, nullable=False),
    PrimaryKeyConstraint("tenant_id", "environment", "agent_id", "period"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("decision_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("amount", ExactDecimal, nullable=False),
    Column("day", Text, nullable=False),
    Column("month", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("committed_amount", ExactDecimal, nullable=True),
)

executions = Table(
    "executions",
    metadata,
    Column("decision_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("executed_at", UtcMicroseconds, nullable=False),
    Column("amount", ExactDecimal, nullable=True),
    Column("currency", Text, nullable=True),
    Column("external_transaction_id", Text, nullable=False),
    Column("error_code", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("reconciliation_status", Text, nullable=False),
    Column("authorized_amount", ExactDecimal, nullable=True),
    Column("executed_amount", ExactDecimal, nullable=True),
    Column("variance", ExactDecimal, nullable=True),
    Column("created_at", UtcMicroseconds, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", Text, nullable=False),  # "" for platform operator calls
    Column("environment", Text, nullable=False),  # "" for platform operator calls
    Column("operation", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("response", CanonicalJson, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=True),
    PrimaryKeyConstraint("tenant_id", "environment", "operation", "key"),
)


ledger_events = Table(
    "ledger_events",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("event_id", Text, nullable=False, unique=True),
    Column("type", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("payload_json", Text, nullable=False),  # verbatim: the exact text that was hashed
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=False),
    PrimaryKeyConstraint("tenant_id", "environment", "sequence"),
    Index(None, "tenant_id", "environment", "subject"),  # an evidence pack's events
)

ledger_heads = Table(
    "ledger_heads",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("last_hash", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "environment"),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("origin", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "environment", "tree_size"),
)


approvals = Table(
    "approvals",
    metadata,
    Column("approval_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("decision_id", Text, nullable=False, unique=True),
    Column("agent_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("original_role", Text, nullable=False),
    Column("approvals_required", BigInteger, nullable=False),
    Column("approvers", StringTuple, nullable=False),
    Column("due_at", UtcMicroseconds, nullable=False),
    Column("timeout_seconds", BigInteger, nullable=False),
    Column("on_timeout", Text, nullable=False),
    Column("escalate_to", Text, nullable=False),
    Column("escalated_on_timeout", Boolean, nullable=False),
    Column("action", CanonicalJson, nullable=False),
    Column("modified_action", CanonicalJson, nullable=True),
    Column("reason_code", Text, nullable=False),
    Column("requester_id", Text, nullable=False),
    Column("human_sponsor_id", Text, nullable=False),
    Column("steps", CanonicalJson, nullable=False),  # {"steps": [...]}
    Column("created_at", UtcMicroseconds, nullable=False),
    Column("updated_at", UtcMicroseconds, nullable=False),
    Column("version", BigInteger, nullable=False),
    Index(None, "tenant_id", "environment", "status", "role"),  # the queues
    Index(None, "status", "due_at"),  # the timeout scheduler
)


bundles = Table(
    "bundles",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("bundle_hash", Text, nullable=False),
    Column("archive", LargeBinary, nullable=False),
    Column("manifest", CanonicalJson, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=False),
    PrimaryKeyConstraint("tenant_id", "bundle_hash"),
)

activations = Table(
    "activations",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("bundle_hash", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("activated_at", UtcMicroseconds, nullable=False),
    Column("action", Text, nullable=False),
    Column("by", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "environment", "sequence"),
)


webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", StringTuple, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("description", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=False),
    Column("updated_at", UtcMicroseconds, nullable=False),
    Index(None, "tenant_id", "environment"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", BigInteger, nullable=False),
    Column("next_attempt_at", UtcMicroseconds, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("created_at", UtcMicroseconds, nullable=False),
    Column("delivered_at", UtcMicroseconds, nullable=True),
    Column("lease_until", UtcMicroseconds, nullable=True),
    Index(None, "status", "next_attempt_at"),  # the worker's queue
    Index(None, "endpoint_id", "created_at"),  # recent deliveries of an endpoint
)
