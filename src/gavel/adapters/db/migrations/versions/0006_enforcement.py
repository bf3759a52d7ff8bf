"""Agent keys bound to agents, and each tenant + environment's minimum enforcement mode.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing keys are not bound to any agent ("[]"): they keep working as before, outside STRICT.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("agents", sa.Text(), nullable=False, server_default="[]"))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("agents", server_default=None)
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("minimum_mode", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "environment", name="pk_tenant_settings"),
    )


def downgrade() -> None:
    op.drop_table("tenant_settings")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("agents")
