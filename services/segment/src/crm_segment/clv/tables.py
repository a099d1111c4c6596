"""Lifetime-value models: one row per fit, created with its operation and filled when the fit
succeeds (in the transaction that completes the operation). Its state is its operation's."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_segment.tables import metadata

lifetime_value_model = sa.Table(
    "lifetime_value_model",
    metadata,
    sa.Column("model_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("operation_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("calibration_start", sa.Date, nullable=False),
    sa.Column("calibration_end", sa.Date, nullable=False),
    sa.Column("holdout_start", sa.Date),
    sa.Column("holdout_end", sa.Date),
    sa.Column("time_unit_days", sa.Integer, nullable=False),
    sa.Column("population_segment_id", sa.Text, nullable=False, server_default=""),
    sa.Column("penalizer", sa.Float, nullable=False),
    sa.Column("horizon_days", sa.Integer, nullable=False),
    sa.Column("annual_discount_rate", sa.Numeric(10, 9), nullable=False),
    # Filled by a succeeded fit; NULL until then (statistics, not money: floats).
    sa.Column("customer_count", sa.BigInteger),
    sa.Column("repeat_customer_count", sa.BigInteger),
    sa.Column("r", sa.Float),
    sa.Column("alpha", sa.Float),
    sa.Column("a", sa.Float),
    sa.Column("b", sa.Float),
    sa.Column("bgnbd_log_likelihood", sa.Float),
    sa.Column("p", sa.Float),
    sa.Column("q", sa.Float),
    sa.Column("gamma", sa.Float),
    sa.Column("gamma_gamma_log_likelihood", sa.Float),
    sa.Column("frequency_value_correlation", sa.Float),
    sa.Column("holdout_predicted", sa.Float),
    sa.Column("holdout_actual", sa.BigInteger),
    sa.Column("holdout_mean_absolute_error", sa.Float),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fitted_at", sa.DateTime(timezone=True)),
    sa.Index("ix_lifetime_value_model_fitted_at", "fitted_at"),
)
