"""The consent ledger and the contact preferences.

`consent_record` is append-only as far as evidence goes: a database trigger refuses any UPDATE
that touches a column other than `customer_id` (which a merge moves to the survivor and an
unmerge moves back). Rows carry no personal data (the evidence reference must not hold any).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

consent_record = sa.Table(
    "consent_record",
    metadata,
    sa.Column("record_id", pg.UUID(as_uuid=True), primary_key=True),
    # Ledger order for ties and for the history's "newest first".
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
    # The customer the record is served under now (the survivor, after a merge) ...
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False),
    # ... and the one it was recorded on.
    sa.Column("origin_customer_id", sa.Text, nullable=False),
    sa.Column("purpose", sa.SmallInteger, nullable=False),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("decision", sa.SmallInteger, nullable=False),
    sa.Column("source", sa.SmallInteger, nullable=False),
    sa.Column("source_reference", sa.Text, nullable=False, server_default=""),
    sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("text_version", sa.Text, nullable=False, server_default=""),
    sa.Column("recorded_by", sa.Text, nullable=False),
    sa.Column("expire_at", sa.DateTime(timezone=True)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("recorder", sa.Text, nullable=False),
    # The RecordConsent call (or merge) that wrote the record: a retried call replays its records.
    sa.Column("batch_id", pg.UUID(as_uuid=True), nullable=False),
    # MERGE-sourced records only: the merge that wrote them. They stop counting once it is undone.
    sa.Column("merge_id", pg.UUID(as_uuid=True)),
    sa.Index("ix_consent_record_customer_pair", "customer_id", "purpose", "channel"),
    sa.Index("ix_consent_record_customer_seq", "customer_id", "seq"),
    sa.Index("ix_consent_record_batch_id", "batch_id"),
)

contact_preference = sa.Table(
    "contact_preference",
    metadata,
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("preferred_channels", pg.ARRAY(sa.SmallInteger), nullable=False, server_default="{}"),
    # [{"days": [1, 2], "start": [h, m, s, nanos], "end": [h, m, s, nanos]}, ...]
    sa.Column("contact_windows", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("time_zone", sa.Text, nullable=False, server_default=""),
    sa.Column("do_not_contact", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("do_not_contact_reason", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("do_not_contact_note", sa.Text, nullable=False, server_default=""),
    sa.Column("do_not_contact_at", sa.DateTime(timezone=True)),
    sa.Column("do_not_contact_until", sa.Date),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
