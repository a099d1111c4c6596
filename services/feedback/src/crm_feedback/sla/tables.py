"""The SLA policy table. The default policy has a row only once someone updated it; until then
the configured one (settings) stands in."""

from __future__ import annotations

import sqlalchemy as sa

from crm_feedback.tables import metadata

sla_policy = sa.Table(
    "sla_policy",
    metadata,
    sa.Column("sla_policy_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    # 0 means any; the default policy is the only row with both 0.
    sa.Column("category", sa.SmallInteger, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("respond_within_seconds", sa.Integer, nullable=False),
    sa.Column("resolve_within_seconds", sa.Integer, nullable=False),
    sa.Column("escalate_on_breach", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("clock_mode", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # At most one policy per (category, priority) pair (sla.proto).
    sa.UniqueConstraint("category", "priority", name="uq_sla_policy_category_priority"),
    sa.CheckConstraint("respond_within_seconds > 0 AND resolve_within_seconds >= respond_within_seconds",
                       name="targets"),
)
