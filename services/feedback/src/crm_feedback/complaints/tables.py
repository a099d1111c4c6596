"""The complaint table. The description is personal data: it is stored only as AES-GCM
ciphertext (`description_sealed`) under the key named in `key_id`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_feedback.tables import metadata

# Serial part of the customer-facing complaint reference (`CMP-YYYYMMDD-NNNNNN`).
complaint_number = sa.Sequence("complaint_number", metadata=metadata)

complaint = sa.Table(
    "complaint",
    metadata,
    sa.Column("complaint_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("category", sa.SmallInteger, nullable=False),
    sa.Column("subcategory", sa.Text, nullable=False, server_default=""),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("description_sealed", sa.LargeBinary, nullable=False),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("related_resources", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("assignee", sa.Text, nullable=False, server_default=""),
    sa.Column("escalation_level", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sla_policy", sa.Text, nullable=False),
    sa.Column("respond_by", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolve_by", sa.DateTime(timezone=True), nullable=False),
    sa.Column("responded_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    # Principal that filed the complaint (staff member or channel application).
    sa.Column("filer", sa.Text, nullable=False),
    # The key that sealed the description: the re-encryption job finds old rows by it.
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_complaint_customer_id", "customer_id", "created_at"),
    sa.Index("ix_complaint_created_at", "created_at", "complaint_id"),
    sa.Index("ix_complaint_respond_by", "respond_by", "complaint_id"),
    sa.Index("ix_complaint_resolve_by", "resolve_by", "complaint_id"),
    sa.Index("ix_complaint_assignee", "assignee"),
    sa.Index("ix_complaint_filer", "filer"),
)
