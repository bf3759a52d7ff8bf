"""The initial schema.

Written by hand to match `gavel.adapters.db.tables`. Plain column types only: instants are
BIGINT microseconds since the epoch, amounts are exact decimal TEXT, documents are canonical
JSON TEXT (see `gavel.adapters.db.columns`).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _instant(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenants",
        _text("tenant_id"),
        _text("name"),
        _instant("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "api_keys",
        _text("key_id"),
        _text("tenant_id", nullable=True),
        _text("environment", nullable=True),
        _text("roles"),
        _text("principal"),
        _text("description"),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        _instant("created_at"),
        _instant("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_tenant_id_environment_key_id", "api_keys", ["tenant_id", "environment", "key_id"])
    op.create_table(
        "agents",
        _text("tenant_id"),
        _text("environment"),
        _text("agent_id"),
        _text("name"),
        _text("owner"),
        _text("control_tier"),
        _text("risk_level"),
        _text("allowed_actions"),
        _text("daily_limit", nullable=True),
        _text("monthly_limit", nullable=True),
        _text("human_sponsor_id"),
        _text("default_mode", nullable=True),
        _text("status"),
        _instant("created_at", nullable=True),
        _instant("updated_at", nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "environment", "agent_id", name="pk_agents"),
    )
    op.create_index(
        "ix_agents_tenant_id_environment_status_agent_id", "agents", ["tenant_id", "environment", "status", "agent_id"]
    )
    op.create_table(
        "decisions",
        _text("decision_id"),
        _text("tenant_id"),
        _text("environment"),
        _text("agent_id"),
        _instant("created_at"),
        _text("outcome"),
        _text("state"),
        _text("mode"),
        sa.Column("enforced", sa.Boolean(), nullable=False),
        _text("reason_code"),
        _text("bundle_hash"),
        _text("request"),
        _text("facts"),
        _text("result"),
        _text("token_jti", nullable=True),
        _text("amount", nullable=True),
        _text("currency", nullable=True),
        _text("correlation_id"),
        sa.PrimaryKeyConstraint("decision_id", name="pk_decisions"),
    )
    op.create_table(
        "tokens",
        _text("jti"),
        _text("tenant_id"),
        _text("environment"),
        _text("decision_id"),
        _text("agent_id"),
        _text("args_hash"),
        _instant("issued_at"),
        _instant("expires_at"),
        _text("state"),
        _instant("consumed_at", nullable=True),
        _instant("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("jti", name="pk_tokens"),
    )
    op.create_index("ix_tokens_state_expires_at", "tokens", ["state", "expires_at"])
    op.create_table(
        "spend_totals",
        _text("tenant_id"),
        _text("environment"),
        _text("agent_id"),
        _text("period"),
        _text("amount"),
        sa.PrimaryKeyConstraint("tenant_id", "environment", "agent_id", "period", name="pk_spend_totals"),
    )
    op.create_table(
        "reservations",
        _text("decision_id"),
        _text("tenant_id"),
        _text("environment"),
        _text("agent_id"),
        _text("amount"),
        _text("day"),
        _text("month"),
        _text("state"),
        _text("committed_amount", nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name="pk_reservations"),
    )
    op.create_table(
        "executions",
        _text("decision_id"),
        _text("tenant_id"),
        _text("environment"),
        _text("status"),
        _instant("executed_at"),
        _text("amount", nullable=True),
        _text("currency", nullable=True),
        _text("external_transaction_id"),
        _text("error_code"),
        _text("error_message"),
        _text("reconciliation_status"),
        _text("authorized_amount", nullable=True),
        _text("executed_amount", nullable=True),
        _text("variance", nullable=True),
        _instant("created_at"),
        sa.PrimaryKeyConstraint("decision_id", name="pk_executions"),
    )
    op.create_table(
        "idempotency_keys",
        _text("tenant_id"),
        _text("environment"),
        _text("operation"),
        _text("key"),
        _text("request_hash"),
        _text("response"),
        _instant("created_at", nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "environment", "operation", "key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    for table in (
        "idempotency_keys", "executions", "reservations", "spend_totals", "tokens", "decisions", "agents", "api_keys",
        "tenants",
    ):
        op.drop_table(table)
