"""The classification tables: the five value-tier definitions an admin edits, and the cuts of the
latest RFM run. Each customer's classification is part of the read model's row
(`features.tables.customer_feature`), so rules read it with the rest of the customer's features."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_segment.tables import metadata

value_tier_definition = sa.Table(
    "value_tier_definition",
    metadata,
    # crm.segment.v1.ValueTier number; the five rows are seeded by the migration.
    sa.Column("tier", sa.SmallInteger, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    # Thresholds in minor units of the reporting currency (NULL: not a criterion of this tier).
    sa.Column("min_average_aum_minor", sa.BigInteger),
    sa.Column("min_expected_lifetime_value_minor", sa.BigInteger),
    sa.Column("min_inflow_90d_minor", sa.BigInteger),
    sa.Column("min_product_count", sa.Integer),
    sa.Column("downgrade_grace_months", sa.Integer, nullable=False),
    # The service standard.
    sa.Column("dedicated_relationship_manager", sa.Boolean, nullable=False),
    sa.Column("priority_service", sa.Boolean, nullable=False),
    sa.Column("complaint_response_hours", sa.Integer, nullable=False),
    sa.Column("max_marketing_contacts_per_week", sa.Integer, nullable=False),
    sa.Column("max_marketing_contacts_per_month", sa.Integer, nullable=False),
    sa.Column("care_programme", sa.Text, nullable=False),
    sa.Column("min_contacts_per_year", sa.Integer, nullable=False),
    sa.Column("max_customers_per_manager", sa.Integer, nullable=False),
    sa.Column("benefits", pg.ARRAY(sa.Text), nullable=False),
    # The etag: bumped by every update.
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updater", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

classification_run = sa.Table(
    "classification_run",
    metadata,
    sa.Column("run_id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # Customers with a transaction, ranked into quintiles, and where the quintiles were cut
    # (`model.RfmBoundaries` as JSON): what customers reclassified until the next run are scored
    # against.
    sa.Column("scored_customers", sa.BigInteger, nullable=False),
    sa.Column("rfm_boundaries", pg.JSONB, nullable=False),
    sa.Column("classified_customers", sa.BigInteger, nullable=False, server_default="0"),
    # `repository.definitions_version` when the run started: a later change calls for another run.
    sa.Column("definitions_version", sa.BigInteger, nullable=False, server_default="0"),
)

# The activity-layer and lifecycle-stage thresholds: one row, seeded by the migration with the
# defaults of `model.ActivityThresholds` and `model.LifecycleThresholds`. The windows the read
# model's signals cover (90 days) are not stored: they are facts of the data, not settings.
classification_thresholds = sa.Table(
    "classification_thresholds",
    metadata,
    sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
    sa.Column("core_recency_days", sa.Integer, nullable=False),
    sa.Column("core_min_activities", sa.Integer, nullable=False),
    sa.Column("core_min_products", sa.Integer, nullable=False),
    sa.Column("active_window_days", sa.Integer, nullable=False),
    sa.Column("acquisition_days", sa.Integer, nullable=False),
    sa.Column("growth_min_percent", sa.Integer, nullable=False),
    sa.Column("decline_min_drop_percent", sa.Integer, nullable=False),
    sa.Column("decline_min_net_closures", sa.Integer, nullable=False),
    sa.Column("churn_max_aum_minor", sa.BigInteger, nullable=False),
    # The etag: bumped by every update.
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updater", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("singleton", name="singleton"),
)
