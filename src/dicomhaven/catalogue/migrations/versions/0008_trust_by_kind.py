"""trust by kind: revocations per device and kind of object, the kind of each held copy

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_kind_revocations",
        sa.Column("device_id", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=128), nullable=False),
        sa.Column("group_id", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("device_id", "kind"),
    )
    with op.batch_alter_table("gate_holds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=128), server_default=sa.text("''"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("gate_holds", schema=None) as batch_op:
        batch_op.drop_column("kind")
    op.drop_table("device_kind_revocations")
