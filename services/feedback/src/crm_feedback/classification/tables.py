"""The text classifier registry: one row per trained classifier version, with its pickled model.

At most one row per target is ACTIVE (partial unique index). The artifact is stored with its
SHA-256, checked before it is unpickled."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_feedback.tables import metadata

ACTIVE = 2

text_classifier = sa.Table(
    "text_classifier",
    metadata,
    sa.Column("text_classifier_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, sa.Identity(always=True), nullable=False, unique=True),
    sa.Column("target", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    # crm.feedback.v1.TextClassifierTrainingSpec as sent, defaults filled in (serialised proto).
    sa.Column("training_spec", sa.LargeBinary, nullable=False),
    sa.Column("labels", pg.JSONB, nullable=False),
    sa.Column("dropped_labels", pg.JSONB, nullable=False),
    sa.Column("metrics", pg.JSONB, nullable=False),
    sa.Column("tuning", pg.JSONB, nullable=False),
    sa.Column("algorithm", sa.Text, nullable=False),
    sa.Column("training_data_sha256", sa.Text, nullable=False),
    sa.Column("artifact", sa.LargeBinary, nullable=False),
    sa.Column("artifact_sha256", sa.Text, nullable=False),
    sa.Column("framework_version", sa.Text, nullable=False),
    sa.Column("training_operation", sa.Text, nullable=False),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("activate_time", sa.DateTime(timezone=True)),
    sa.Column("retire_time", sa.DateTime(timezone=True)),
    sa.Index("ux_text_classifier_active", "target", unique=True, postgresql_where=sa.text(f"status = {ACTIVE}")),
)
