"""The trigger_rule table: event triggers, each with its condition and action stored whole as JSON."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.tables import metadata

trigger_rule = sa.Table(
    "trigger_rule",
    metadata,
    sa.Column("trigger_rule_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("state", sa.SmallInteger, nullable=False),
    # Follows from `condition`; a column so that rules can be found by the events they react to.
    sa.Column("event_type", sa.SmallInteger, nullable=False),
    # {"<condition case>": {its fields}}, durations in whole days, amounts as decimal strings.
    sa.Column("condition", pg.JSONB, nullable=False),
    sa.Column("population_segment", sa.Text, nullable=False, server_default=""),
    # The offer action's campaign (empty for a care-task action), to list a campaign's rules.
    sa.Column("campaign_id", sa.Text, nullable=False, server_default=""),
    # {"<action case>": {its fields}}.
    sa.Column("action", pg.JSONB, nullable=False),
    sa.Column("cooldown_days", sa.Integer, nullable=False),
    sa.Column("fire_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_fired_at", sa.DateTime(timezone=True)),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_trigger_rule_display_name", "display_name", "trigger_rule_id"),
    sa.Index("ix_trigger_rule_event_type", "event_type", "state"),
    sa.Index("ix_trigger_rule_campaign", "campaign_id"),
)
