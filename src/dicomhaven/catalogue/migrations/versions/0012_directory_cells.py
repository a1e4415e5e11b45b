"""directory cells: the directory's published, suppressed and rounded counts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_cells",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dimension", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("by_value", sa.String(length=128), nullable=False),
        sa.Column("patients", sa.Integer(), nullable=True),
        sa.Column("series", sa.Integer(), nullable=True),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("rounding", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_directory_cells_dimension", "directory_cells", ["dimension"])
    op.create_index("ix_directory_cells_by", "directory_cells", ["by"])


def downgrade() -> None:
    op.drop_index("ix_directory_cells_by", table_name="directory_cells")
    op.drop_index("ix_directory_cells_dimension", table_name="directory_cells")
    op.drop_table("directory_cells")
