"""Alert rules, with the kit's outbox, audit log and idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:02:41.118805
"""

import sqlalchemy as sa
from alembic import op
from crmkit.kit_schema import create_kit_tables, drop_kit_tables
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables()
    op.create_table('alert_rule',
    sa.Column('alert_rule_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('severity', sa.SmallInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('window_duration', sa.Interval(), nullable=False),
    sa.Column('response_sla', sa.Interval(), nullable=True),
    sa.Column('cooldown', sa.Interval(), nullable=True),
    sa.Column('default_assignee', sa.Text(), server_default='', nullable=False),
    sa.Column('parameters', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('alert_rule_id', name=op.f('pk_alert_rule'))
    )
    op.create_index('ix_alert_rule_kind', 'alert_rule', ['kind', 'alert_rule_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_alert_rule_kind', table_name='alert_rule')
    op.drop_table('alert_rule')
    drop_kit_tables()
