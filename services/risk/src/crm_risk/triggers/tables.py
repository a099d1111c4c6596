"""What the alert triggers remember between profile events: the latest contact digests per
customer (keyed digests, never the details) and the log of changes the rules count."""

from __future__ import annotations

import sqlalchemy as sa

from crm_risk.tables import metadata

contact_digest = sa.Table(
    "contact_digest",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),
    sa.Column("digest", sa.Text, nullable=False),
)

contact_change = sa.Table(
    "contact_change",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),
    # The profile event that changed it (a replay of the event adds nothing).
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_contact_change_time", "customer_id", "changed_at"),
)
