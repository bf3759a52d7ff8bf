"""Published policy bundles and their activation history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "bundles",
        _text("tenant_id"), _text("bundle_hash"),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        _text("manifest"), sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "bundle_hash", name="pk_bundles"),
    )
    op.create_table(
        "activations",
        _text("tenant_id"), _text("environment"), sa.Column("sequence", sa.BigInteger(), nullable=False),
        _text("bundle_hash"), _text("version"), sa.Column("activated_at", sa.BigInteger(), nullable=False),
        _text("action"), _text("by"),
        sa.PrimaryKeyConstraint("tenant_id", "environment", "sequence", name="pk_activations"),
    )


def downgrade() -> None:
    op.drop_table("activations")
    op.drop_table("bundles")
