"""Current members of each segment, and the history of entries and exits (kept after a
segment is deleted, so no foreign key to `segment`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_segment.tables import metadata

segment_member = sa.Table(
    "segment_member",
    metadata,
    sa.Column("segment_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
    # The segment's rule_version under which the customer entered.
    sa.Column("rule_version", sa.BigInteger, nullable=False),
)

membership_change = sa.Table(
    "membership_change",
    metadata,
    sa.Column("change_id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("segment_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    # crm.segment.v1.MembershipChangeKind and MembershipChangeCause numbers.
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("cause", sa.SmallInteger, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rule_version", sa.BigInteger, nullable=False),
    # The materialisation that made the change; NULL for real-time changes.
    sa.Column("operation_id", pg.UUID(as_uuid=True)),
    sa.Column("source_event_id", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_membership_change_segment", "segment_id", sa.text("changed_at DESC"), sa.text("change_id DESC")),
    sa.Index("ix_membership_change_customer", "customer_id", sa.text("changed_at DESC"), sa.text("change_id DESC")),
)
