"""Match rules, the candidates the matcher files, merges with their lineage and undo data, and
the blind-indexed name keys fuzzy rules block on."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

match_rule = sa.Table(
    "match_rule",
    metadata,
    sa.Column("match_rule_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("priority", sa.Integer, nullable=False),
    # {"exact": {"key": 1}} or {"fuzzy": {"comparisons": [...], "review_threshold": .., ...}}
    sa.Column("criteria", pg.JSONB, nullable=False),
    sa.Column("action", sa.SmallInteger, nullable=False),
    sa.Column("survivorship_rules", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_match_rule_priority", "priority", "match_rule_id"),
)

match_candidate = sa.Table(
    "match_candidate",
    metadata,
    sa.Column("match_candidate_id", pg.UUID(as_uuid=True), primary_key=True),
    # The pair, older customer first.
    sa.Column("customer_a", sa.Text, nullable=False),
    sa.Column("customer_b", sa.Text, nullable=False),
    sa.Column("match_rule_id", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("similarities", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("review_conflict", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", sa.Text, nullable=False, server_default=""),
    sa.Column("merge_name", sa.Text, nullable=False, server_default=""),
    sa.Column("dismiss_reason", sa.Text, nullable=False, server_default=""),
    # One open (pending) or closed-as-different (dismissed) candidate per pair: never re-suggested.
    sa.Index("uq_match_candidate_pair", "customer_a", "customer_b", unique=True,
             postgresql_where=sa.text("state IN (1, 3)")),
    sa.Index("ix_match_candidate_queue", "state", sa.text("score DESC"), "created_at", "match_candidate_id"),
    sa.Index("ix_match_candidate_customer_b", "customer_b"),
)

customer_merge = sa.Table(
    "customer_merge",
    metadata,
    sa.Column("merge_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("survivor_id", sa.Text, nullable=False),
    sa.Column("source_id", sa.Text, nullable=False),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("field_lineage", pg.JSONB, nullable=False),
    sa.Column("consent_conflicts", pg.JSONB, nullable=False),
    sa.Column("review_required", sa.Boolean, nullable=False),
    sa.Column("review_reasons", pg.ARRAY(sa.SmallInteger), nullable=False),
    sa.Column("match_candidate_id", pg.UUID(as_uuid=True)),
    sa.Column("match_rule_id", sa.Text, nullable=False, server_default=""),
    sa.Column("merged_by", sa.Text, nullable=False),
    sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("unmerged_by", sa.Text, nullable=False, server_default=""),
    sa.Column("unmerged_at", sa.DateTime(timezone=True)),
    # What an unmerge needs: the survivor before and after (personal values sealed as in the
    # customer row), its preferences before, and the rows the merge moved or set aside.
    sa.Column("undo", pg.JSONB, nullable=False),
    sa.Index("ix_customer_merge_survivor", "survivor_id", sa.text("merged_at DESC")),
    sa.Index("ix_customer_merge_source", "source_id", "state"),
    sa.Index("ix_customer_merge_merged_at", sa.text("merged_at DESC"), "merge_id"),
)

# Blocking keys of fuzzy rules: a keyed HMAC of the normalised, phonetic form of the name, so
# customers whose names sound alike are paired without storing or scanning names in clear.
# No foreign key on purpose: the matcher writes keys of many customers in one transaction, and
# the key-share locks a foreign key takes would deadlock with writers locking those customers.
# The matcher drops the key of a deleted customer; the pool query joins live customers anyway.
match_name_key = sa.Table(
    "match_name_key",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("name_key", sa.LargeBinary, nullable=False),
    sa.Index("ix_match_name_key_name_key", "name_key"),
)

# How far the background matcher has read the change feed (one row).
matcher_state = sa.Table(
    "matcher_state",
    metadata,
    sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
    # The change feed's opaque cursor ("<xid>.<sequence>", crmkit.outbox) of the last event read;
    # empty before the first.
    sa.Column("cursor", sa.Text, nullable=False, server_default=""),
    # Name keys are kept only while a fuzzy rule exists; when one appears they are backfilled
    # (in customer id order, resumable) before being kept current again.
    sa.Column("name_keys_ready", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("name_keys_after", sa.Text, nullable=False, server_default=""),
    sa.CheckConstraint("singleton", name="singleton"),
)
