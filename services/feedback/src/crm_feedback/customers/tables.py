"""Feedback's read model of profile's customers (who exists, in which state), and the cursor of
profile's feed it follows. Written only by the follower (`follower.py`)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_feedback.tables import metadata
from crmkit.feed_consumer import feed_cursor_table

feed_cursor = feed_cursor_table(metadata)

known_customer = sa.Table(
    "known_customer",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    # CustomerState: 1 active, 2 merged, 3 erased; 0 for a record profile deleted.
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("merged_into", sa.Text, nullable=False, server_default=""),
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    # When the event that wrote the row happened at profile.
    sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
)

# Each customer's value tier (ValueTier number), from segment's feed.
customer_tier = sa.Table(
    "customer_tier",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("value_tier", sa.SmallInteger, nullable=False),
    sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
)

# Each value tier's complaint response time (ServiceStandard.max_response_time); null: none set.
tier_standard = sa.Table(
    "tier_standard",
    metadata,
    sa.Column("value_tier", sa.SmallInteger, primary_key=True),
    sa.Column("max_response_seconds", sa.Integer),
    sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
)
