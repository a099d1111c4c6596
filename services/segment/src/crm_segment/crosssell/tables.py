"""Association-rule mining runs and the rules each found (written with the run's completion,
in one transaction: a run has all its rules or none)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_segment.tables import metadata

association_run = sa.Table(
    "association_run",
    metadata,
    sa.Column("run_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("operation_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("population_segment_id", sa.Text, nullable=False, server_default=""),
    sa.Column("min_support", sa.Float, nullable=False),
    sa.Column("min_confidence", sa.Float, nullable=False),
    sa.Column("min_lift", sa.Float, nullable=False),
    sa.Column("max_rule_size", sa.SmallInteger, nullable=False),
    sa.Column("max_rules", sa.Integer, nullable=False),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("customer_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rule_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("matching_rule_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("features_as_of", sa.DateTime(timezone=True)),
    sa.Index("ix_association_run_completed", sa.text("completed_at DESC"), "run_id",
             postgresql_where=sa.text("completed_at IS NOT NULL")),
)

association_rule = sa.Table(
    "association_rule",
    metadata,
    sa.Column("run_id", pg.UUID(as_uuid=True), sa.ForeignKey("association_run.run_id", ondelete="CASCADE"),
              primary_key=True),
    # The rule's rank in its run (lift, confidence, support, items), from 1.
    sa.Column("rule_id", sa.Integer, primary_key=True),
    sa.Column("antecedent", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("consequent", sa.Text, nullable=False),
    sa.Column("support", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("lift", sa.Float, nullable=False),
    sa.Column("both_count", sa.BigInteger, nullable=False),
    sa.Column("antecedent_count", sa.BigInteger, nullable=False),
    sa.Column("consequent_count", sa.BigInteger, nullable=False),
)
