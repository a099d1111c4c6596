"""The trigger calendar read model: each customer's relationship anniversary (month-day, year) and last own activity

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 16:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trigger_customer_calendar',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('onboarded_month_day', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('onboarded_year', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('last_active_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_trigger_customer_calendar'))
    )
    op.create_index('ix_trigger_customer_calendar_anniversary', 'trigger_customer_calendar', ['onboarded_month_day'],
                    unique=False)
    op.create_index('ix_trigger_customer_calendar_active', 'trigger_customer_calendar', ['last_active_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_trigger_customer_calendar_active', table_name='trigger_customer_calendar')
    op.drop_index('ix_trigger_customer_calendar_anniversary', table_name='trigger_customer_calendar')
    op.drop_table('trigger_customer_calendar')
