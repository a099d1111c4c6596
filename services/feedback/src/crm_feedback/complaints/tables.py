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
    sa.Column("product", sa.Text, nullable=False, server_default=""),
    # The customer's relationship manager as feedback's read model of profile knows it (kept
    # current by the follower): the manager whose book the complaint is in.
    sa.Column("customer_manager", sa.Text, nullable=False, server_default=""),
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
    # Early-escalation points of the clocks and whether a breach escalates (from the policy).
    sa.Column("respond_escalate_at", sa.DateTime(timezone=True)),
    sa.Column("resolve_escalate_at", sa.DateTime(timezone=True)),
    sa.Column("escalate_on_breach", sa.Boolean, nullable=False, server_default=sa.false()),
    # Principal that filed the complaint (staff member or channel application).
    sa.Column("filer", sa.Text, nullable=False),
    # The key that sealed the description: the re-encryption job finds old rows by it.
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    # The latest resolution (replaced when resolved again after a reopen); its summary is
    # personal data, sealed like the description.
    sa.Column("resolution_outcome", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("resolution_summary_sealed", sa.LargeBinary),
    sa.Column("resolution_root_cause", sa.Text, nullable=False, server_default=""),
    sa.Column("compensation_currency", sa.Text, nullable=False, server_default=""),
    sa.Column("compensation_amount", sa.Numeric(24, 9)),
    sa.Column("resolver", sa.Text, nullable=False, server_default=""),
    sa.Column("resolution_at", sa.DateTime(timezone=True)),
    sa.Column("close_reason", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("duplicate_of", sa.Text, nullable=False, server_default=""),
    sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_complaint_customer_id", "customer_id", "created_at"),
    sa.Index("ix_complaint_created_at", "created_at", "complaint_id"),
    sa.Index("ix_complaint_respond_by", "respond_by", "complaint_id"),
    sa.Index("ix_complaint_resolve_by", "resolve_by", "complaint_id"),
    sa.Index("ix_complaint_assignee", "assignee"),
    sa.Index("ix_complaint_filer", "filer"),
    sa.Index("ix_complaint_customer_manager", "customer_manager"),
)

# Notes: numbered 1, 2, ... per complaint (under the complaint's row lock); the text is
# personal data, sealed under `key_id`.
complaint_note = sa.Table(
    "complaint_note",
    metadata,
    sa.Column("complaint_id", sa.Text, sa.ForeignKey("complaint.complaint_id"), primary_key=True),
    sa.Column("note_id", sa.Integer, primary_key=True),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("text_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("contact_channel", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The timeline: one append-only row per workflow step, in the order taken.
complaint_step = sa.Table(
    "complaint_step",
    metadata,
    sa.Column("complaint_step_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("complaint_id", sa.Text, sa.ForeignKey("complaint.complaint_id"), nullable=False),
    sa.Column("action", sa.SmallInteger, nullable=False),
    sa.Column("from_status", sa.SmallInteger, nullable=False),
    sa.Column("to_status", sa.SmallInteger, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("assignee", sa.Text, nullable=False, server_default=""),
    sa.Column("escalation_level", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("note_id", sa.Integer),
    sa.Column("escalation_trigger", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Index("ix_complaint_step_complaint_id", "complaint_id", "complaint_step_id"),
)
