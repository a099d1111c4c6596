"""The segment table: definitions only; membership and its history come with materialisation."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_segment.tables import metadata

segment = sa.Table(
    "segment",
    metadata,
    sa.Column("segment_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("evaluation_mode", sa.SmallInteger, nullable=False),
    # Whole seconds; NULL means materialised on demand only.
    sa.Column("refresh_interval_seconds", sa.Integer),
    sa.Column("rule_version", sa.BigInteger, nullable=False, server_default="1"),
    # Features the rule reads, for "segments reading feature X" and, later, real-time routing.
    sa.Column("referenced_features", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("member_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_materialised_at", sa.DateTime(timezone=True)),
    sa.Column("last_materialise_operation", sa.Text, nullable=False, server_default=""),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_segment_referenced_features", "referenced_features", postgresql_using="gin"),
)

# Display names are unique regardless of case; listing pages through segments in this order.
sa.Index("uq_segment_display_name", sa.func.lower(segment.c.display_name), unique=True)
