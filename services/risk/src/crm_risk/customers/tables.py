"""The customer read model table: one row per customer, written only from profile's feed.

Each part of the row (the customer record, the age from profile's features) keeps the feed
position of the event that last wrote it (`crmkit.outbox.feed_order`): an event at or before it
changes nothing, so a replay or an out-of-order delivery cannot bring back an older value.

Profile shows a service its customers' birth year only; the exact age comes from profile's
derived features (`age_years`, as of `age_on`). Vulnerability, the risk assessment's expiry and
the credit system's overdue flag are custom attributes whose ids are risk settings.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.tables import metadata
from crmkit.feed_consumer import feed_cursor_table

# (transaction id * 10^19 + sequence) needs up to 39 digits.
Position = sa.Numeric(40, 0)

customer = sa.Table(
    "customer",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("customer_position", Position),
    # Deleted, merged or erased in profile: unknown to every decision.
    sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
    # crm.profile.v1.RiskTolerance / KycStatus numbers (risk mirrors them).
    sa.Column("risk_tolerance", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("assessment_expiry", sa.Date),
    sa.Column("kyc_status", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("birth_year", sa.SmallInteger),
    sa.Column("vulnerable", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("credit_overdue", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    # What churn models score on, by feature name: the customer's custom attributes by id
    # (numbers, booleans as 1/0, text), `gender`, `region` and `birth_year` (text or numbers).
    sa.Column("feature_values", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("features_position", Position),
    sa.Column("age_years", sa.SmallInteger),
    sa.Column("age_on", sa.Date),
    # The relationship's dates from the customer record (`closed_on`: the last account closed).
    sa.Column("onboarded_on", sa.Date),
    sa.Column("closed_on", sa.Date),
    # Profile's derived features (written with the age), amounts in the reporting currency;
    # null until profile's features arrive (or when not in the reporting currency).
    sa.Column("aum", sa.Numeric(24, 4)),
    sa.Column("average_aum_90d", sa.Numeric(24, 4)),
    sa.Column("aum_change_90d", sa.Numeric(24, 4)),
    sa.Column("product_count", sa.Integer),
    sa.Column("last_activity_at", sa.DateTime(timezone=True)),
    sa.Column("features_computed_at", sa.DateTime(timezone=True)),
    # When the newest applied event about this customer happened at profile.
    sa.Column("data_as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_customer_manager", "relationship_manager_id", "customer_id"),
)

# The cursors of the peer feeds risk follows (crmkit.peer_feed).
feed_cursor = feed_cursor_table(metadata)
