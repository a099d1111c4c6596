"""The alert rule table. Thresholds live in `parameters` (JSON), shaped by the rule's kind."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.tables import metadata

alert_rule = sa.Table(
    "alert_rule",
    metadata,
    sa.Column("alert_rule_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    # `window` is an SQL keyword; the rule's sliding window.
    sa.Column("window_duration", sa.Interval, nullable=False),
    # NULL where the caller left them unset: the contract's defaults apply (see rules.py).
    sa.Column("response_sla", sa.Interval),
    sa.Column("cooldown", sa.Interval),
    sa.Column("default_assignee", sa.Text, nullable=False, server_default=""),
    sa.Column("parameters", pg.JSONB, nullable=False),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_alert_rule_kind", "kind", "alert_rule_id"),
)
