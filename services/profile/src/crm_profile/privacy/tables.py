"""Privacy's own tables: erasure reports, retention policies, audit anchors, the rotated key."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

# The bank's evidence that it honoured an erasure request (EraseCustomer returns it again). No
# foreign key: the evidence outlives the tombstone. Holds class counts, never personal values.
customer_erasure = sa.Table(
    "customer_erasure",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("erased_by", sa.Text, nullable=False),
    sa.Column("case_reference", sa.Text, nullable=False),
    # [{"data_class": 2, "outcome": 1, "record_count": 5, "restricted_until": null}, ...]
    sa.Column("report", pg.JSONB, nullable=False),
)

# One row per data class (but NON_PERSONAL), created by the migration with the defaults of
# `retention_rules.DEFAULT_POLICIES`; updated, never created or deleted, by the API.
retention_policy = sa.Table(
    "retention_policy",
    metadata,
    sa.Column("data_class", sa.SmallInteger, primary_key=True),
    sa.Column("retention_days", sa.Integer, nullable=False),
    sa.Column("anchor", sa.SmallInteger, nullable=False),
    sa.Column("action", sa.SmallInteger, nullable=False),
    sa.Column("overrides_erasure", sa.Boolean, nullable=False),
    sa.Column("legal_basis", sa.Text, nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("last_purge_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("retention_days > 0", name="retention_positive"),
)

# Where each audit chain stood when the retention purge removed its oldest records: the hash
# of the last removed record, from which the first kept one must follow.
audit_anchor = sa.Table(
    "audit_anchor",
    metadata,
    sa.Column("chain_id", sa.Text, primary_key=True),
    sa.Column("purged_through_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.LargeBinary, nullable=False),
    sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The key a rotation made active, so a restart keeps sealing with it (see rotation.py).
encryption_key_state = sa.Table(
    "encryption_key_state",
    metadata,
    sa.Column("purpose", sa.SmallInteger, primary_key=True),
    sa.Column("active_key_id", sa.Text, nullable=False),
    # The configured key the rotation replaced: the state applies only while the configuration
    # still names that key (an operator who configures another key has the last word).
    sa.Column("replaced_key_id", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
