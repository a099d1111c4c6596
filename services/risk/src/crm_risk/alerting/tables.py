"""The alert table: one row per alert a rule raised, with its workflow state."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.tables import metadata

OPEN = 1
OPEN_STATUSES = "(1, 2, 3, 6)"

alert = sa.Table(
    "alert",
    metadata,
    sa.Column("alert_id", sa.Text, primary_key=True),
    # No foreign key: a rule whose alerts are all closed may be deleted, its alerts stay.
    sa.Column("alert_rule_id", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("summary", sa.Text, nullable=False),
    # [{description, resource, occur_time, currency_code, units, nanos}], oldest first, no personal data.
    sa.Column("evidence", pg.JSONB, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("assignee", sa.Text, nullable=False, server_default=""),
    sa.Column("trigger_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("respond_time", sa.DateTime(timezone=True)),
    sa.Column("escalate_time", sa.DateTime(timezone=True)),
    sa.Column("outcome", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("dismiss_reason", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("close_note", sa.Text, nullable=False, server_default=""),
    sa.Column("close_time", sa.DateTime(timezone=True)),
    sa.Column("decision_audit", sa.Text, nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_alert_due", "due_time", "alert_id"),
    sa.Index("ix_alert_trigger", "trigger_time", "alert_id"),
    sa.Index("ix_alert_customer", "customer_id"),
    # The escalator's scan: only alerts nobody has answered.
    sa.Index("ix_alert_escalation", "due_time", postgresql_where=sa.text(f"status = {OPEN}")),
    sa.Index("ix_alert_open_rule", "alert_rule_id", postgresql_where=sa.text(f"status IN {OPEN_STATUSES}")),
)
