"""The model registry's table: one row per registered churn model version.

The descriptive parts (features, metrics, fairness, parameters) are JSON written from the churn
core's dataclasses: they are read back whole, never queried. The artifact is stored with its
SHA-256, which scoring checks before unpickling it. At most one row is ACTIVE (partial unique
index), so "which version is active" is a fact of the table, not of a separate pointer.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.tables import metadata

ACTIVE = 2

churn_model = sa.Table(
    "churn_model",
    metadata,
    sa.Column("churn_model_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, sa.Identity(always=True), nullable=False, unique=True),
    # The core's content version (rules.model_version): equal for equal data, params and code.
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("algorithm", sa.SmallInteger, nullable=False),
    # crm.risk.v1.TrainingSpec as sent, defaults filled in (serialised proto).
    sa.Column("training_spec", sa.LargeBinary, nullable=False),
    sa.Column("features", pg.JSONB, nullable=False),
    sa.Column("params", pg.JSONB, nullable=False),
    sa.Column("metrics", pg.JSONB, nullable=False),
    sa.Column("cross_validation", pg.JSONB),
    sa.Column("band_thresholds", pg.JSONB, nullable=False),
    sa.Column("fairness", pg.JSONB, nullable=False),
    sa.Column("encoding", pg.JSONB, nullable=False),
    sa.Column("training_data_sha256", sa.Text, nullable=False),
    sa.Column("artifact", sa.LargeBinary, nullable=False),
    sa.Column("artifact_sha256", sa.Text, nullable=False),
    sa.Column("framework_version", sa.Text, nullable=False),
    sa.Column("training_operation", sa.Text, nullable=False),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("promoter", sa.Text, nullable=False, server_default=""),
    sa.Column("promote_time", sa.DateTime(timezone=True)),
    sa.Column("retire_time", sa.DateTime(timezone=True)),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
    # Bumped on every status change; the etag is derived from it.
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ux_churn_model_active", "status", unique=True, postgresql_where=sa.text(f"status = {ACTIVE}")),
)
