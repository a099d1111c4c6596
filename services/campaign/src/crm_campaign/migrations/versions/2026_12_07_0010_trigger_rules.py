"""Trigger rules, their firings (one per rule, customer and event), cool-downs and payroll months

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 16:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trigger_rule",
        sa.Column("trigger_rule_id", sa.Text, primary_key=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("event_type", sa.SmallInteger, nullable=False),
        sa.Column("condition", pg.JSONB, nullable=False),
        sa.Column("population_segment", sa.Text, nullable=False, server_default=""),
        sa.Column("campaign_id", sa.Text, nullable=False, server_default=""),
        sa.Column("action", pg.JSONB, nullable=False),
        sa.Column("cooldown_days", sa.Integer, nullable=False),
        sa.Column("fire_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_fired_at", sa.DateTime(timezone=True)),
        sa.Column("creator", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_trigger_rule_display_name", "trigger_rule", ["display_name", "trigger_rule_id"])
    op.create_index("ix_trigger_rule_event_type", "trigger_rule", ["event_type", "state"])
    op.create_index("ix_trigger_rule_campaign", "trigger_rule", ["campaign_id"])
    op.create_table(
        "trigger_firing",
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
    )
    op.create_index("ix_trigger_firing_customer", "trigger_firing", ["customer_id", "created_at"])
    op.create_table(
        "trigger_cooldown",
        sa.Column("trigger_rule_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("last_fired_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "trigger_payroll_month",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("currency_code", sa.Text, primary_key=True),
        sa.Column("largest_amount", sa.Numeric(20, 9), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trigger_payroll_month")
    op.drop_table("trigger_cooldown")
    op.drop_table("trigger_firing")
    op.drop_table("trigger_rule")
