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

# One row per (rule, customer, event) the rule matched: the unique key makes a replayed or
# repeated event fire nothing twice. Kept when the rule is deleted (what it did stays).
trigger_firing = sa.Table(
    "trigger_firing",
    metadata,
    sa.Column("trigger_firing_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("trigger_rule_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("event_key", sa.Text, nullable=False),
    sa.Column("event_type", sa.SmallInteger, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("campaign_id", sa.Text, nullable=False, server_default=""),
    sa.Column("offer_id", sa.Text, nullable=False, server_default=""),
    sa.Column("suppression_reason", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("trigger_rule_id", "customer_id", "event_key", name="uq_trigger_firing_event"),
    sa.Index("ix_trigger_firing_customer", "customer_id", "created_at"),
)

# When each rule last acted for each customer: the cool-down is a conditional upsert on it.
trigger_cooldown = sa.Table(
    "trigger_cooldown",
    metadata,
    sa.Column("trigger_rule_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("last_fired_at", sa.DateTime(timezone=True), nullable=False),
)

# The largest salary credit of each customer's month (profile's payroll-credit events), for
# "consecutive months of salary" conditions.
trigger_payroll_month = sa.Table(
    "trigger_payroll_month",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("currency_code", sa.Text, primary_key=True),
    sa.Column("largest_amount", sa.Numeric(20, 9), nullable=False),
)

# What the calendar scan needs about each customer, from profile's feed, and no more: the
# relationship's anniversary as month-day and year (from Customer.onboarded_on), and the time of
# the customer's last own activity (a login or a customer-initiated transaction event).
trigger_customer_calendar = sa.Table(
    "trigger_customer_calendar",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    # month * 100 + day of the relationship's start (e.g. 1207); 0 when unknown.
    sa.Column("onboarded_month_day", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("onboarded_year", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("last_active_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_trigger_customer_calendar_anniversary", "onboarded_month_day"),
    sa.Index("ix_trigger_customer_calendar_active", "last_active_at"),
)
