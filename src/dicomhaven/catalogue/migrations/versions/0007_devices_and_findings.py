"""devices, scan findings and gate holds

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("software", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "scan_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=24), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("detector", sa.String(length=32), nullable=False),
        sa.Column("tag_path", sa.String(length=255), nullable=False),
        sa.Column("path_pattern", sa.String(length=255), nullable=False),
        sa.Column("keyword", sa.String(length=64), nullable=False),
        sa.Column("vr", sa.String(length=4), nullable=False),
        sa.Column("shape", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["object_id"], ["ledger_objects.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scan_findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scan_findings_object_id"), ["object_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_scan_findings_rule"), ["rule"], unique=False)
    op.create_table(
        "gate_holds",
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=24), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("release_reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["object_id"], ["ledger_objects.id"]),
        sa.PrimaryKeyConstraint("object_id"),
    )
    with op.batch_alter_table("gate_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_holds_device_id"), ["device_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gate_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_holds_device_id"))
    op.drop_table("gate_holds")
    with op.batch_alter_table("scan_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scan_findings_rule"))
        batch_op.drop_index(batch_op.f("ix_scan_findings_object_id"))
    op.drop_table("scan_findings")
    op.drop_table("devices")
