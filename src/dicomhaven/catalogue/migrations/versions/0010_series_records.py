"""series records: instance counts a source announced, head series decisions, members

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-20 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series_records",
        sa.Column("series_key", sa.String(length=80), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("slices", sa.Integer(), nullable=False),
        sa.Column("render", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("series_key"),
    )
    op.create_table(
        "series_members",
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("series_key", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["object_id"], ["ledger_objects.id"]),
        sa.PrimaryKeyConstraint("object_id"),
    )
    with op.batch_alter_table("series_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_series_members_series_key"), ["series_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("series_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_members_series_key"))
    op.drop_table("series_members")
    op.drop_table("series_records")
