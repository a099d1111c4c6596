"""The audience of each campaign: one row per customer a build considered, in the target group,
the control group, or suppressed with the reason. Control members carry the offer and channel
they would have got, so results can compare like with like per offer, channel and segment."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.tables import metadata

audience_member = sa.Table(
    "audience_member",
    metadata,
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    # 1 target, 2 control, 3 suppressed (audience.model.AudienceGroup).
    sa.Column("group", sa.SmallInteger, nullable=False),
    sa.Column("offer_id", sa.Text, nullable=False, server_default=""),
    sa.Column("channel", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("segment", sa.Text, nullable=False, server_default=""),
    sa.Column("suppression_reason", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # Attribution looks a customer up across campaigns.
    sa.Index("ix_audience_member_customer", "customer_id"),
)
