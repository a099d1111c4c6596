"""The feature read model's tables: one row per customer, the per-holding and per-channel rows
its holdings and consent columns are folded from, and per-day transaction totals.

Each part of a customer's row (`customer_*`, the derived features, the contact preferences) and
each holding and consent row keeps the feed position of the event that last wrote it (`*_position`,
`rules.position_key`): an event at or before it changes nothing, so a replay or an out-of-order
delivery cannot bring back an older value. Money is NUMERIC in the reporting currency.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_segment.tables import metadata

# (transaction id * 10^19 + sequence) needs up to 39 digits.
Position = sa.Numeric(40, 0)
Amount = sa.Numeric(28, 9)

customer_feature = sa.Table(
    "customer_feature",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    # From the customer record (a service reader's masked view).
    sa.Column("customer_position", Position),
    # Deleted, merged or erased in profile: outside every segment.
    sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("customer_type", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("birth_year", sa.SmallInteger),
    sa.Column("gender", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("nationality", sa.Text, nullable=False, server_default=""),
    sa.Column("kyc_status", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("risk_tolerance", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("onboarded_on", sa.Date),
    sa.Column("closed_on", sa.Date),
    # From profile's derived features; NULL until the first features event.
    sa.Column("features_position", Position),
    sa.Column("reporting_currency", sa.Text, nullable=False, server_default=""),
    sa.Column("aum", Amount),
    sa.Column("average_aum_90d", Amount),
    sa.Column("aum_change_90d", Amount),
    sa.Column("product_count", sa.Integer),
    sa.Column("product_type_count", sa.Integer),
    sa.Column("tenure_days", sa.Integer),
    sa.Column("recency_days", sa.Integer),
    sa.Column("frequency", sa.Integer),
    sa.Column("monetary", Amount),
    sa.Column("login_count_30d", sa.Integer),
    sa.Column("visit_count_30d", sa.Integer),
    sa.Column("transaction_count_30d", sa.Integer),
    sa.Column("transaction_count_90d", sa.Integer),
    sa.Column("active_channel_count_90d", sa.Integer),
    sa.Column("days_since_last_activity", sa.Integer),
    sa.Column("last_activity_at", sa.DateTime(timezone=True)),
    sa.Column("age_years", sa.Integer),
    sa.Column("holdings_opened_90d", sa.Integer),
    sa.Column("holdings_closed_90d", sa.Integer),
    sa.Column("payroll_active", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("features_computed_at", sa.DateTime(timezone=True)),
    # Folded from feature_holding: categories of open holdings, the earliest maturity ahead.
    sa.Column("product_categories", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("next_maturity_on", sa.Date),
    # From contact preferences and (folded from feature_consent) marketing consents.
    sa.Column("preferences_position", Position),
    sa.Column("do_not_contact", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("do_not_contact_until", sa.Date),
    sa.Column("marketing_channels", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    # Length of profile's RFM window (recency_days, frequency, monetary), days.
    sa.Column("rfm_window_days", sa.Integer),
    # The newest transaction event folded into feature_transaction_day for this customer.
    sa.Column("transactions_position", Position),
    # Segment's own classification of the customer (crm_segment.classifications), recomputed in
    # the transaction that applies a change to the row and by the scheduled run; enums keep the
    # contract's numbers, 0 until first classified.
    sa.Column("value_tier", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("value_tier_since", sa.Date),
    sa.Column("previous_value_tier", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("qualifying_aum", Amount),
    sa.Column("downgrade_due_on", sa.Date),
    sa.Column("activity_layer", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("activity_layer_since", sa.Date),
    sa.Column("lifecycle_stage", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("lifecycle_stage_since", sa.Date),
    sa.Column("rfm_recency_score", sa.SmallInteger),
    sa.Column("rfm_frequency_score", sa.SmallInteger),
    sa.Column("rfm_monetary_score", sa.SmallInteger),
    sa.Column("rfm_segment", sa.SmallInteger, nullable=False, server_default="0"),
    # 3-year expected lifetime value under the latest succeeded model; NULL without one.
    sa.Column("expected_lifetime_value", Amount),
    sa.Column("classified_at", sa.DateTime(timezone=True)),
    # The time profile wrote the newest event applied to this customer.
    sa.Column("features_as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_customer_feature_features_as_of", "features_as_of"),
    sa.Index("ix_customer_feature_value_tier", "value_tier"),
)

feature_holding = sa.Table(
    "feature_holding",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("holding_id", sa.Text, primary_key=True),
    sa.Column("position", Position, nullable=False),
    sa.Column("product_type", sa.SmallInteger, nullable=False),
    # False once closed or deleted: the row stays as the tombstone an older event cannot undo.
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("maturity_on", sa.Date),
)

feature_consent = sa.Table(
    "feature_consent",
    metadata,
    # The latest marketing decision per channel, by the decision's effective time.
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("channel", sa.SmallInteger, primary_key=True),
    sa.Column("position", Position, nullable=False),
    sa.Column("opted_in", sa.Boolean, nullable=False),
    sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expire_at", sa.DateTime(timezone=True)),
)

feature_transaction_day = sa.Table(
    "feature_transaction_day",
    metadata,
    # Customer-initiated transactions of profile's event feed, one row per customer and day
    # (UTC): what lifetime-value models are fitted on. Amounts are summed as sent, whatever the
    # currency (a statistical input, never a ledger).
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("amount", Amount, nullable=False),
    sa.Column("transaction_count", sa.Integer, nullable=False),
)

feature_complaint = sa.Table(
    "feature_complaint",
    metadata,
    # Feedback's complaints (crmkit.peer_payloads), one row each, kept when resolved or deleted
    # (open false) as the tombstone an older event cannot undo; `position` is feedback's feed's.
    sa.Column("complaint_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("position", Position, nullable=False),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_feature_complaint_customer_id", "customer_id", "filed_at"),
)

feature_churn_score = sa.Table(
    "feature_churn_score",
    metadata,
    # Risk's current churn score of each customer as its feed last published it (a band change
    # or a move by risk's step); `position` is risk's feed's.
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("position", Position, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("risk_band", sa.SmallInteger, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
)

feature_campaign_touch = sa.Table(
    "feature_campaign_touch",
    metadata,
    # Campaign's dispatches and offer responses (crmkit.peer_payloads), one row per resource
    # (`campaigns/{c}/dispatches/{d}` or `campaigns/{c}/responses/{r}`); `position` is campaign's
    # feed's. `contacted_at`: when the customer was contacted (a dispatch once sent or delivered,
    # an offer shown on an inbound channel), else NULL; `responded_at` and `positive`: a response
    # other than SHOWN, and whether it showed interest (opened, clicked, interested, accepted).
    sa.Column("resource_name", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("position", Position, nullable=False),
    sa.Column("contacted_at", sa.DateTime(timezone=True)),
    sa.Column("responded_at", sa.DateTime(timezone=True)),
    sa.Column("positive", sa.Boolean),
    sa.Index("ix_feature_campaign_touch_customer_id", "customer_id"),
)
