"""The dispatch table: one row per (campaign, customer, channel), queued or suppressed by the
audience build and moved through SENDING to SENT or FAILED by the dispatcher."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

dispatch = sa.Table(
    "dispatch",
    metadata,
    sa.Column("dispatch_id", sa.Text, primary_key=True),
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("offer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("channel_reason", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("template_id", sa.Text, nullable=False, server_default=""),
    sa.Column("headline", sa.Text, nullable=False, server_default=""),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("suppression_reason", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("provider_message_id", sa.Text, nullable=False, server_default=""),
    # {"reason": ..., "message": ..., "metadata": {...}}; NULL when there is no error.
    sa.Column("last_error", pg.JSONB),
    sa.Column("not_before_at", sa.DateTime(timezone=True)),
    # While SENDING: until when this claim holds; past it, another dispatcher may hand the
    # dispatch over again (with the same id, which the adapter deduplicates).
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    # What the offer scored in arbitration for this customer (priority x expected value x
    # probability), which a rival campaign must beat; NULL for rows from before it was kept.
    sa.Column("arbitration_score", sa.Float),
    # The propensity model whose probability that score used; empty: the observed response rate.
    sa.Column("propensity_model", sa.Text, nullable=False, server_default=""),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("campaign_id", "customer_id", "channel", name="uq_dispatch_campaign_customer_channel"),
    # ListDispatches pages newest first within a campaign, or across campaigns for one customer.
    sa.Index("ix_dispatch_campaign_created", "campaign_id", "created_at", "dispatch_id"),
    sa.Index("ix_dispatch_customer_created", "customer_id", "created_at", "dispatch_id"),
    # The dispatcher's work queue: only rows still to send are indexed.
    sa.Index("ix_dispatch_pending", "created_at", postgresql_where=sa.text("state IN (1, 7)")),
)
