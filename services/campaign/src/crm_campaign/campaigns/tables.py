"""Campaign tables: the campaign itself and the record of every lifecycle transition.

Contact policy and channel costs are stored as JSON: they are read and written whole with the
campaign, never queried by their parts.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

campaign = sa.Table(
    "campaign",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("segment", sa.Text, nullable=False, server_default=""),
    sa.Column("active_start_at", sa.DateTime(timezone=True)),
    sa.Column("active_end_at", sa.DateTime(timezone=True)),
    sa.Column("contact_policy", pg.JSONB, nullable=False),
    sa.Column("holdout_percentage", sa.Numeric(5, 2), nullable=False, server_default="0"),
    sa.Column("control_seed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("max_contacts", sa.BigInteger, nullable=False, server_default="0"),
    # Whole seconds; NULL means the default window.
    sa.Column("attribution_window_seconds", sa.Integer),
    sa.Column("fixed_cost_currency", sa.Text),
    sa.Column("fixed_cost_amount", sa.Numeric(20, 9)),
    sa.Column("channel_costs", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("submitter", sa.Text, nullable=False, server_default=""),
    sa.Column("state_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("scheduled_launch_at", sa.DateTime(timezone=True)),
    sa.Column("launched_at", sa.DateTime(timezone=True)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("audience_operation", sa.Text, nullable=False, server_default=""),
    sa.Column("target_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("control_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # Listing pages through campaigns most recently updated first.
    sa.Index("ix_campaign_updated_at", "updated_at", "campaign_id"),
    sa.Index("ix_campaign_state", "state", "updated_at"),
    sa.Index("ix_campaign_segment", "segment"),
)

# Append-only history of the lifecycle: approvals and rejections are read back from it as the
# campaign's approval history.
campaign_transition = sa.Table(
    "campaign_transition",
    metadata,
    sa.Column("campaign_transition_id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"), nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("from_state", sa.SmallInteger, nullable=False),
    sa.Column("to_state", sa.SmallInteger, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_campaign_transition_campaign_id", "campaign_id", "campaign_transition_id"),
)
