"""catalogue index: released studies, series and instances with their filter values

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-21 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_STUDY_INDEXED = ("pseudonym", "study_year", "age_band", "sex")
_SERIES_INDEXED = (
    "study_uid",
    "pseudonym",
    "modality",
    "body_part_code",
    "procedure_code",
    "laterality",
    "view_position",
    "manufacturer",
    "model",
    "study_year",
    "age_band",
    "sex",
    "presentation_intent",
)
_INSTANCE_INDEXED = ("series_uid", "kvp", "anode", "slice_thickness", "convolution_kernel")


def upgrade() -> None:
    op.create_table(
        "catalogue_studies",
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("pseudonym", sa.String(length=16), nullable=False),
        sa.Column("study_year", sa.Integer(), nullable=True),
        sa.Column("age_band", sa.String(length=8), nullable=False),
        sa.Column("sex", sa.String(length=2), nullable=False),
        sa.PrimaryKeyConstraint("study_uid"),
    )
    op.create_table(
        "catalogue_series",
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("pseudonym", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("body_part_code", sa.String(length=32), nullable=False),
        sa.Column("body_part_meaning", sa.String(length=128), nullable=False),
        sa.Column("procedure_code", sa.String(length=32), nullable=False),
        sa.Column("procedure_meaning", sa.String(length=128), nullable=False),
        sa.Column("laterality", sa.String(length=4), nullable=False),
        sa.Column("view_position", sa.String(length=16), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("study_year", sa.Integer(), nullable=True),
        sa.Column("age_band", sa.String(length=8), nullable=False),
        sa.Column("sex", sa.String(length=2), nullable=False),
        sa.Column("presentation_intent", sa.String(length=16), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_uid"], ["catalogue_studies.study_uid"]),
        sa.PrimaryKeyConstraint("series_uid"),
    )
    op.create_table(
        "catalogue_instances",
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("laterality", sa.String(length=4), nullable=False),
        sa.Column("view_position", sa.String(length=16), nullable=False),
        sa.Column("kvp", sa.Float(), nullable=True),
        sa.Column("exposure", sa.Float(), nullable=True),
        sa.Column("anode", sa.String(length=16), nullable=False),
        sa.Column("filter", sa.String(length=16), nullable=False),
        sa.Column("compression_force", sa.Float(), nullable=True),
        sa.Column("body_part_thickness", sa.Float(), nullable=True),
        sa.Column("slice_thickness", sa.Float(), nullable=True),
        sa.Column("convolution_kernel", sa.String(length=32), nullable=False),
        sa.Column("ctdi_vol", sa.Float(), nullable=True),
        sa.Column("acquisition", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["series_uid"], ["catalogue_series.series_uid"]),
        sa.PrimaryKeyConstraint("sop_uid"),
    )
    for table, columns in (
        ("catalogue_studies", _STUDY_INDEXED),
        ("catalogue_series", _SERIES_INDEXED),
        ("catalogue_instances", _INSTANCE_INDEXED),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)
    with op.batch_alter_table("catalogue_series", schema=None) as batch_op:
        batch_op.create_index(
            "ix_catalogue_series_modality_body", ["modality", "body_part_code"], unique=False
        )
        batch_op.create_index(
            "ix_catalogue_series_modality_year", ["modality", "study_year"], unique=False
        )


def downgrade() -> None:
    op.drop_table("catalogue_instances")
    op.drop_table("catalogue_series")
    op.drop_table("catalogue_studies")
