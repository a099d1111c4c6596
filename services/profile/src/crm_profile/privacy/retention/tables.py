"""The retention policies."""

from __future__ import annotations

import sqlalchemy as sa

from crm_profile.tables import metadata

# One row per data class (but NON_PERSONAL), created by the migration with the defaults of
# `retention.rules.DEFAULT_POLICIES`; updated, never created or deleted, by the API.
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
