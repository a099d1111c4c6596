"""The read models an audience build reads: copies of what other services own, kept by followers
of their change feeds (crmkit.peer_feed). The campaign service never asks a peer at build time,
so a build works while the peers are down.

- `segment_member`: segment's SegmentMember events (who is in which segment now).
- `customer_contact`: profile's consents, contact preferences and do-not-contact, reduced to what
  marketing needs: the channels with marketing consent, the channels with a contact detail on
  file, the preferred channel, the customer's time zone and relationship manager (their book).
- `open_complaint`: feedback's complaints that are not closed.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

segment_member = sa.Table(
    "segment_member",
    metadata,
    sa.Column("segment_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_segment_member_customer", "customer_id"),
)

customer_contact = sa.Table(
    "customer_contact",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("do_not_contact", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("consented_channels", pg.ARRAY(sa.SmallInteger), nullable=False, server_default="{}"),
    sa.Column("reachable_channels", pg.ARRAY(sa.SmallInteger), nullable=False, server_default="{}"),
    sa.Column("preferred_channel", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("time_zone", sa.Text, nullable=False, server_default=""),
    sa.Column("held_products", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

open_complaint = sa.Table(
    "open_complaint",
    metadata,
    sa.Column("complaint_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_open_complaint_customer", "customer_id"),
)
