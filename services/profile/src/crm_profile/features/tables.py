"""The derived-feature tables: one row of features per customer, the customer's AUM history (the
days its AUM changed), and the marks of customers whose events arrived since their last
recomputation.

Amounts are BIGINT minor units of the reporting currency (`reporting_currency`), never floats.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

customer_feature = sa.Table(
    "customer_feature",
    metadata,
    # Features go with the customer record (DeleteCustomer); consumers of the customer's DELETED
    # change drop them too.
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    # When a value last changed other than by the calendar moving on (what the feed publishes).
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reporting_currency", sa.Text, nullable=False),
    # RFM inputs.
    sa.Column("rfm_window_days", sa.Integer, nullable=False),
    sa.Column("last_transaction_at", sa.DateTime(timezone=True)),
    sa.Column("recency_days", sa.Integer),
    sa.Column("frequency", sa.Integer, nullable=False),
    sa.Column("monetary_minor", sa.BigInteger, nullable=False),
    # Assets and products.
    sa.Column("aum_minor", sa.BigInteger, nullable=False),
    sa.Column("average_aum_90d_minor", sa.BigInteger, nullable=False),
    sa.Column("product_count", sa.Integer, nullable=False),
    sa.Column("product_type_count", sa.Integer, nullable=False),
    sa.Column("onboarded_on", sa.Date, nullable=False),
    sa.Column("tenure_days", sa.Integer, nullable=False),
    # Activity inputs.
    sa.Column("last_activity_at", sa.DateTime(timezone=True)),
    sa.Column("login_count_30d", sa.Integer, nullable=False),
    sa.Column("visit_count_30d", sa.Integer, nullable=False),
    sa.Column("transaction_count_30d", sa.Integer, nullable=False),
    sa.Column("transaction_count_90d", sa.Integer, nullable=False),
    sa.Column("active_channel_count_90d", sa.Integer, nullable=False),
    sa.Column("days_since_last_activity", sa.Integer),
    # Maturity.
    sa.Column("next_maturity_date", sa.Date),
    sa.Column("days_to_next_maturity", sa.Integer),
    sa.Column("next_maturing_holding_id", sa.Text),
    # Lifecycle inputs.
    sa.Column("age_years", sa.Integer),
    sa.Column("holdings_opened_90d", sa.Integer, nullable=False),
    sa.Column("holdings_closed_90d", sa.Integer, nullable=False),
    sa.Column("aum_change_90d_minor", sa.BigInteger, nullable=False),
    sa.Column("payroll_active", sa.Boolean, nullable=False),
    sa.Column("closed_on", sa.Date),
)

# AUM of a customer from `effective_on` until the next row's day: a row is written only on the
# days AUM changes, so the average over 90 days reads a handful of rows, not 90.
customer_aum_history = sa.Table(
    "customer_aum_history",
    metadata,
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("effective_on", sa.Date, primary_key=True),
    sa.Column("aum_minor", sa.BigInteger, nullable=False),
)

# Customers whose events were stored since their features were last computed: each ingest batch
# adds one row with its distinct customers, in its own transaction (one small insert, no conflicts,
# no locks on the hot path); the refresher takes the oldest rows, recomputes their customers and
# puts back, under the first row's id, those it leaves for its next round.
customer_feature_mark = sa.Table(
    "customer_feature_mark",
    metadata,
    sa.Column("mark_id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column("customer_ids", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
