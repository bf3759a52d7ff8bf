"""The evidence ledger: events (a hash chain per tenant and environment), chain heads, and
signed checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ledger_events",
        _text("tenant_id"),
        _text("environment"),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        _text("event_id"),
        _text("type"),
        _text("subject"),
        _text("payload_json"),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "environment", "sequence", name="pk_ledger_events"),
        sa.UniqueConstraint("event_id", name="uq_ledger_events_event_id"),
    )
    op.create_index("ix_ledger_events_tenant_id_environment_subject", "ledger_events",
                    ["tenant_id", "environment", "subject"])
    op.create_table(
        "ledger_heads",
        _text("tenant_id"),
        _text("environment"),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "environment", name="pk_ledger_heads"),
    )
    op.create_table(
        "ledger_checkpoints",
        _text("tenant_id"),
        _text("environment"),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        _text("key_id"),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        _text("note"),
        _text("origin"),
        sa.PrimaryKeyConstraint("tenant_id", "environment", "tree_size", name="pk_ledger_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_heads")
    op.drop_index("ix_ledger_events_tenant_id_environment_subject", table_name="ledger_events")
    op.drop_table("ledger_events")
