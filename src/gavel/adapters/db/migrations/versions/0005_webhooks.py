"""Webhook endpoints and the durable delivery outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False)


def _instant(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        _text("endpoint_id"), _text("tenant_id"), _text("environment"), _text("url"), _text("events"),
        sa.Column("enabled", sa.Boolean(), nullable=False), _text("description"), _text("secret"),
        _instant("created_at"), _instant("updated_at"),
        sa.PrimaryKeyConstraint("endpoint_id", name="pk_webhook_endpoints"),
    )
    op.create_index("ix_webhook_endpoints_tenant_id_environment", "webhook_endpoints", ["tenant_id", "environment"])
    op.create_table(
        "webhook_deliveries",
        _text("delivery_id"), _text("tenant_id"), _text("environment"), _text("endpoint_id"), _text("event"),
        _text("body"), _text("status"), sa.Column("attempts", sa.BigInteger(), nullable=False),
        _instant("next_attempt_at"), _text("last_error"), _instant("created_at"), _instant("delivered_at", True),
        _instant("lease_until", True),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_status_next_attempt_at", "webhook_deliveries",
                    ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_endpoint_id_created_at", "webhook_deliveries",
                    ["endpoint_id", "created_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
