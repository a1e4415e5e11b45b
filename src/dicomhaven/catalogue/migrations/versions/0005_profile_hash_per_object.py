"""profile hash per object

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 06:46:05.522574
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("profile_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_objects", schema=None) as batch_op:
        batch_op.drop_column("profile_sha256")
