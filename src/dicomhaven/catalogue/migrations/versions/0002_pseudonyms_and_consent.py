"""pseudonyms and consent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:13:53.420921
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_pseudonym"), ["pseudonym"], unique=False)

    with op.batch_alter_table("ledger_objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pseudonym", sa.String(length=16), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_ledger_objects_pseudonym"), ["pseudonym"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_objects_pseudonym"))
        batch_op.drop_column("pseudonym")

    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_pseudonym"))

    op.drop_table("consents")
