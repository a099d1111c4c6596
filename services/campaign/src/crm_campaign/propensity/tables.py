"""The propensity_model table: the registry of trained response-propensity models."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

propensity_model = sa.Table(
    "propensity_model",
    metadata,
    sa.Column("offer_type", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("algorithm", sa.Text, nullable=False),
    sa.Column("features", pg.ARRAY(sa.Text), nullable=False),
    # propensity.model.Metrics as JSON (held-out measures and row counts).
    sa.Column("metrics", pg.JSONB, nullable=False),
    sa.Column("data_fingerprint", sa.Text, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    # The fitted, calibrated estimator and its feature encoding (pickle, written and read
    # only by this service's own code).
    sa.Column("artifact", sa.LargeBinary, nullable=False),
    # SHA-256 of `artifact` at registration: scoring refuses bytes that differ before unpickling.
    sa.Column("artifact_sha256", sa.Text, nullable=False),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# A read model of profile's customers (propensity.customer_features): each one's modelling
# features, {"occupation": "technician", "attributes.has_housing_loan": true, ...}.
customer_feature = sa.Table(
    "customer_feature",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("features", pg.JSONB, nullable=False),
    sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
)
