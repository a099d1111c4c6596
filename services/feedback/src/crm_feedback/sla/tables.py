"""The SLA policy table. The default policy has a row only once someone updated it; until then
the configured one (settings) stands in."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

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
    sa.Column("pre_breach_escalation_share", sa.Float, nullable=False, server_default="0"),
    # The business calendar (calendar.py) as JSON: time zone, ISO weekdays, HH:MM:SS hours, ISO dates.
    sa.Column("calendar", pg.JSONB),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # At most one policy per (category, priority) pair (sla.proto).
    sa.UniqueConstraint("category", "priority", name="uq_sla_policy_category_priority"),
    sa.CheckConstraint("respond_within_seconds > 0 AND resolve_within_seconds >= respond_within_seconds",
                       name="targets"),
)

# One row per SLA clock of a complaint: the respond clock (cycle 0) and one resolve clock per
# reopen cycle. Written by the complaint's workflow under the complaint's row lock (deadlines,
# stop), and by the clock worker, which records what it did (`escalated_at`, `breached_at`) so
# each event happens once whichever replica runs it. The breach columns keep the complaint's
# triage as it was when the clock breached (`SlaBreach`).
sla_clock = sa.Table(
    "sla_clock",
    metadata,
    sa.Column("complaint_id", sa.Text, sa.ForeignKey("complaint.complaint_id"), primary_key=True),
    sa.Column("clock", sa.SmallInteger, primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    sa.Column("sla_policy", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("escalate_at", sa.DateTime(timezone=True)),
    sa.Column("escalate_on_breach", sa.Boolean, nullable=False),
    sa.Column("stopped_at", sa.DateTime(timezone=True)),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("escalated_at", sa.DateTime(timezone=True)),
    sa.Column("breached_at", sa.DateTime(timezone=True)),
    sa.Column("breach_category", sa.SmallInteger),
    sa.Column("breach_priority", sa.SmallInteger),
    sa.Column("breach_branch_id", sa.Text),
    sa.Column("breach_assignee", sa.Text),
    sa.Column("breach_escalation_level", sa.SmallInteger),
    # The worker's scan: running clocks by their next moment.
    sa.Index("ix_sla_clock_running_due", "due_at", postgresql_where=sa.text("stopped_at IS NULL")),
    sa.Index("ix_sla_clock_running_escalate", "escalate_at",
             postgresql_where=sa.text("stopped_at IS NULL AND escalated_at IS NULL AND breached_at IS NULL")),
    sa.Index("ix_sla_clock_due_at", "due_at"),
)
