"""clinical records

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:20:02.242768
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clinical_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("clinical_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clinical_records_pseudonym"), ["pseudonym"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("clinical_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinical_records_pseudonym"))

    op.drop_table("clinical_records")
