"""Current churn scores: one row per customer, the last written-back score (what the customer 360
and the early-warning list read without scoring again)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.tables import metadata

churn_score = sa.Table(
    "churn_score",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("churn_model_id", sa.Text, nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("risk_band", sa.SmallInteger, nullable=False),
    # [{feature, value, reference, contribution}], largest contribution first.
    sa.Column("top_drivers", pg.JSONB, nullable=False),
    sa.Column("features_as_of", sa.DateTime(timezone=True)),
    sa.Column("score_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decision_audit", sa.Text, nullable=False),
    # The customer's book when scored (early warnings list a manager's own customers).
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_churn_score_manager", "relationship_manager_id", "probability"),
)
