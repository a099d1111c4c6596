"""The imported_contact table: past campaign contacts loaded from a bank's files."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

imported_contact = sa.Table(
    "imported_contact",
    metadata,
    sa.Column("imported_contact_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source_system", sa.Text, nullable=False),
    # What makes a contact the same one again within its source (re-imports change nothing):
    # attempt number and time, as "<attempt>|<time or month/day of week>".
    sa.Column("contact_key", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("offer_type", sa.Text, nullable=False),
    # campaigns.model.Channel.
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("contacted_at", sa.DateTime(timezone=True)),
    sa.Column("contact_month", sa.SmallInteger),
    # google.type.DayOfWeek: 1 Monday .. 7 Sunday.
    sa.Column("contact_day_of_week", sa.SmallInteger),
    sa.Column("attempt_number", sa.Integer),
    # contacts.model.ContactOutcome / PreviousOutcome.
    sa.Column("outcome", sa.SmallInteger, nullable=False),
    sa.Column("previous_outcome", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("days_since_previous_contact", sa.Integer),
    sa.Column("previous_contact_count", sa.Integer),
    # What was true at contact time, by key: {"age": 56, "euribor3m": 4.857, "job_then": "x"}
    # (numbers as JSON numbers, categories as strings, booleans as booleans).
    sa.Column("context", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("operation_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("source_system", "customer_id", "offer_type", "contact_key",
                        name="uq_imported_contact_source_contact"),
    # Training reads one offer type's contacts.
    sa.Index("ix_imported_contact_offer_type", "offer_type", "imported_contact_id"),
)
