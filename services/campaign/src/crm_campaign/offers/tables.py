"""The offer table: a campaign's offers, deleted with their (draft) campaign."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

offer = sa.Table(
    "offer",
    metadata,
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("offer_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("product_code", sa.Text, nullable=False),
    sa.Column("product_risk_level", sa.SmallInteger, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("expected_value_currency", sa.Text, nullable=False),
    sa.Column("expected_value_amount", sa.Numeric(20, 9), nullable=False),
    sa.Column("eligibility_segment", sa.Text, nullable=False, server_default=""),
    sa.Column("excluded_product_codes", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("channels", pg.ARRAY(sa.SmallInteger), nullable=False, server_default="{}"),
    # [{"channel": int, "template_id": str, "headline": str}], read and written whole.
    sa.Column("contents", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("valid_start_at", sa.DateTime(timezone=True)),
    sa.Column("valid_end_at", sa.DateTime(timezone=True)),
    sa.Column("conversion_points", sa.BigInteger, nullable=False, server_default="0"),
    # Whose propensity model scores the offer (propensity_model.offer_type); empty: none.
    sa.Column("offer_type", sa.Text, nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
