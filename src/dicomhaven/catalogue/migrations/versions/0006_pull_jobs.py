"""pull jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 10:42:23.557937
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=True),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("planned", sa.Boolean(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("studies", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pull_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pull_jobs_fingerprint"), ["fingerprint"], unique=False)
        batch_op.create_index(batch_op.f("ix_pull_jobs_spec"), ["spec"], unique=False)

    op.create_table(
        "pull_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("study_key", sa.String(length=80), nullable=False),
        sa.Column("series_key", sa.String(length=80), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["pull_jobs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "series_key"),
    )
    with op.batch_alter_table("pull_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pull_items_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pull_items_study_key"), ["study_key"], unique=False)

    op.create_table(
        "pull_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["pull_items.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "object_key"),
    )
    with op.batch_alter_table("pull_instances", schema=None) as batch_op:
        batch_op.create_index("ix_pull_instances_object_key", ["object_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pull_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_pull_instances_object_key")

    op.drop_table("pull_instances")
    with op.batch_alter_table("pull_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pull_items_study_key"))
        batch_op.drop_index(batch_op.f("ix_pull_items_job_id"))

    op.drop_table("pull_items")
    with op.batch_alter_table("pull_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pull_jobs_spec"))
        batch_op.drop_index(batch_op.f("ix_pull_jobs_fingerprint"))

    op.drop_table("pull_jobs")
