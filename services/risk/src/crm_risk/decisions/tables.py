"""The decision audit table: append-only (no UPDATE or DELETE is ever issued on it)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.tables import metadata

decision_audit = sa.Table(
    "decision_audit",
    metadata,
    sa.Column("decision_audit_id", sa.Text, primary_key=True),
    # Insertion order: newest first is `sequence` descending (the list's page key).
    sa.Column("sequence", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
    sa.Column("decision_type", sa.SmallInteger, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("decided_by", sa.Text, nullable=False),
    sa.Column("decider_version", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("reason_codes", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("inputs", pg.JSONB, nullable=False),
    sa.Column("inputs_sha256", sa.Text, nullable=False),
    sa.Column("context", sa.Text, nullable=False, server_default=""),
    sa.Column("requester", sa.Text, nullable=False),
    sa.Column("trace_id", sa.Text, nullable=False, server_default=""),
    sa.Column("decide_time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_decision_audit_customer", "customer_id", "sequence"),
    sa.Index("ix_decision_audit_context", "context", "sequence", postgresql_where=sa.text("context <> ''")),
)
