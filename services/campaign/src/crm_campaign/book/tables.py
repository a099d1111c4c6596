"""The relationship managers' books: each customer's relationship manager, copied from profile's
Customer events by the follower in `follower.py` (the only writer)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.tables import metadata

customer_manager = sa.Table(
    "customer_manager",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    # Employee id of the customer's relationship manager; "" for unmanaged (or deleted) customers.
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    # False once profile deleted the record; the row stays so the customer is still known.
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    # When the event that wrote the row happened at profile.
    sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_customer_manager_manager", "relationship_manager_id"),
)
