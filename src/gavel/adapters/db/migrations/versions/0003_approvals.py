"""Human approval tasks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _int(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "approvals",
        _text("approval_id"), _text("tenant_id"), _text("environment"), _text("decision_id"), _text("agent_id"),
        _text("status"), _text("role"), _text("original_role"), _int("approvals_required"), _text("approvers"),
        _int("due_at"), _int("timeout_seconds"), _text("on_timeout"), _text("escalate_to"),
        sa.Column("escalated_on_timeout", sa.Boolean(), nullable=False),
        _text("action"), _text("modified_action", nullable=True), _text("reason_code"), _text("requester_id"),
        _text("human_sponsor_id"), _text("steps"), _int("created_at"), _int("updated_at"), _int("version"),
        sa.PrimaryKeyConstraint("approval_id", name="pk_approvals"),
        sa.UniqueConstraint("decision_id", name="uq_approvals_decision_id"),
    )
    op.create_index("ix_approvals_tenant_id_environment_status_role", "approvals",
                    ["tenant_id", "environment", "status", "role"])
    op.create_index("ix_approvals_status_due_at", "approvals", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_approvals_status_due_at", table_name="approvals")
    op.drop_index("ix_approvals_tenant_id_environment_status_role", table_name="approvals")
    op.drop_table("approvals")
