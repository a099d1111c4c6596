"""Audience members, responses and conversions; each campaign's control-group seed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaign", sa.Column("control_seed", sa.BigInteger, nullable=False, server_default="0"))
    # Campaigns made before seeds existed get one now, drawn like the service draws them (63 bits).
    op.execute("UPDATE campaign SET control_seed = floor(random() * 9223372036854775807)::bigint")
    op.create_table(
        "audience_member",
        sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("group", sa.SmallInteger, nullable=False),
        sa.Column("offer_id", sa.Text, nullable=False, server_default=""),
        sa.Column("channel", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("segment", sa.Text, nullable=False, server_default=""),
        sa.Column("suppression_reason", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_audience_member_customer", "audience_member", ["customer_id"])
    op.create_table(
        "offer_response",
        sa.Column("response_id", sa.Text, primary_key=True),
        sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("offer_id", sa.Text, nullable=False),
        sa.Column("dispatch_id", sa.Text, nullable=False, server_default=""),
        sa.Column("decision_id", sa.Text, nullable=False, server_default=""),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("response_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorder", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_offer_response_campaign", "offer_response", ["campaign_id", "customer_id"])
    op.create_table(
        "conversion",
        sa.Column("conversion_id", sa.Text, primary_key=True),
        sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("offer_id", sa.Text, nullable=False),
        sa.Column("product_code", sa.Text, nullable=False),
        sa.Column("amount_currency", sa.Text),
        sa.Column("amount", sa.Numeric(20, 9)),
        sa.Column("value_currency", sa.Text, nullable=False),
        sa.Column("value", sa.Numeric(20, 9), nullable=False),
        sa.Column("conversion_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("control_group", sa.Boolean, nullable=False),
        sa.Column("dispatch_id", sa.Text, nullable=False, server_default=""),
        sa.Column("source_reference", sa.Text, nullable=False),
        sa.Column("points_awarded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("source_reference", name="uq_conversion_source_reference"),
    )
    op.create_index("ix_conversion_campaign", "conversion", ["campaign_id", "customer_id"])


def downgrade() -> None:
    op.drop_table("conversion")
    op.drop_table("offer_response")
    op.drop_table("audience_member")
    op.drop_column("campaign", "control_seed")
