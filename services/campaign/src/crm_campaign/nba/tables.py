"""Next-best-action decisions: each answer as given, so a response can name the decision that
showed the offer (`OfferResponse.decision_id`) and results can tell inbound contacts apart."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

nba_decision = sa.Table(
    "nba_decision",
    metadata,
    sa.Column("decision_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    # Principal (JWT subject) that asked.
    sa.Column("requester", sa.Text, nullable=False),
    sa.Column("degraded_reasons", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    # [{rank, campaign_id, offer_id, product_code, score, reasons: [{code, description, weight}]}]
    sa.Column("actions", pg.JSONB, nullable=False),
    # [{campaign_id, offer_id, product_code, reason, description}]
    sa.Column("excluded", pg.JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_nba_decision_customer", "customer_id", "created_at"),
)
