"""Responses and conversions: append-only records of what customers did with offers."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.tables import metadata

offer_response = sa.Table(
    "offer_response",
    metadata,
    sa.Column("response_id", sa.Text, primary_key=True),
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("offer_id", sa.Text, nullable=False),
    sa.Column("dispatch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("decision_id", sa.Text, nullable=False, server_default=""),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("response_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorder", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_offer_response_campaign", "campaign_id", "customer_id"),
    # Contact history and next best action read one customer's responses across campaigns.
    sa.Index("ix_offer_response_customer", "customer_id", "response_time"),
)

conversion = sa.Table(
    "conversion",
    metadata,
    sa.Column("conversion_id", sa.Text, primary_key=True),
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("offer_id", sa.Text, nullable=False),
    sa.Column("product_code", sa.Text, nullable=False),
    sa.Column("amount_currency", sa.Text),
    sa.Column("amount", sa.Numeric(20, 9)),
    # Revenue to the bank in the reporting currency (the offer's expected value when not given).
    sa.Column("value_currency", sa.Text, nullable=False),
    sa.Column("value", sa.Numeric(20, 9), nullable=False),
    sa.Column("conversion_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("control_group", sa.Boolean, nullable=False),
    sa.Column("dispatch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("source_reference", sa.Text, nullable=False),
    sa.Column("points_awarded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("source_reference", name="uq_conversion_source_reference"),
    sa.Index("ix_conversion_campaign", "campaign_id", "customer_id"),
)
