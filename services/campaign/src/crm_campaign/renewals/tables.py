"""Renewal tracking's tables, fed by profile's Holding events: the holdings that can mature or take
reinvested money, and one renewal per maturity of a holding. Each customer's relationship manager
is the books' (`book.tables.customer_manager`)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.tables import metadata

renewal_holding = sa.Table(
    "renewal_holding",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("holding_id", sa.Text, primary_key=True),
    sa.Column("product_code", sa.Text, nullable=False),
    sa.Column("product_type", sa.SmallInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("balance", sa.Numeric(24, 9), nullable=False),
    # The balance in the bank's reporting currency, as profile converted it.
    sa.Column("reporting_balance", sa.Numeric(24, 9), nullable=False),
    sa.Column("open_date", sa.Date, nullable=False),
    sa.Column("maturity_date", sa.Date),
    sa.Column("status", sa.SmallInteger, nullable=False),
    # Feed position of the event last applied (crmkit.outbox.feed_order): only newer events overwrite.
    sa.Column("position", sa.Numeric(40, 0), nullable=False),
    sa.Index("ix_renewal_holding_customer_open", "customer_id", "open_date"),
)

renewal = sa.Table(
    "renewal",
    metadata,
    sa.Column("renewal_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("holding_id", sa.Text, nullable=False),
    sa.Column("product_code", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("maturity_date", sa.Date, nullable=False),
    sa.Column("maturing_amount", sa.Numeric(24, 9), nullable=False),
    sa.Column("maturing_reporting_amount", sa.Numeric(24, 9), nullable=False),
    # Set when profile reports the holding rolled over (its maturity date moved on): renewed in place.
    sa.Column("rolled_over_amount", sa.Numeric(24, 9)),
    sa.Column("rolled_over_reporting_amount", sa.Numeric(24, 9)),
    sa.Column("rolled_over_on", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("customer_id", "holding_id", "maturity_date", name="uq_renewal_holding_maturity"),
    sa.Index("ix_renewal_maturity", "maturity_date", "renewal_id"),
)
