"""Transaction baselines, hourly outflows, abnormal transactions and holding maturities, for the transaction alert rules

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('transaction_baseline',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('direction', sa.SmallInteger(), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('mean', sa.Float(), nullable=False),
    sa.Column('m2', sa.Float(), nullable=False),
    sa.Column('position', sa.Numeric(precision=40, scale=0), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'direction', name=op.f('pk_transaction_baseline'))
    )
    op.create_table('outflow_bucket',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amount', sa.Numeric(precision=24, scale=4), nullable=False),
    sa.Column('transfer_amount', sa.Numeric(precision=24, scale=4), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'hour', name=op.f('pk_outflow_bucket'))
    )
    op.create_table('abnormal_transaction',
    sa.Column('alert_rule_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('event', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('direction', sa.SmallInteger(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=24, scale=4), nullable=False),
    sa.Column('z_score', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('alert_rule_id', 'customer_id', 'event', name=op.f('pk_abnormal_transaction'))
    )
    op.create_index('ix_abnormal_transaction_time', 'abnormal_transaction',
                    ['alert_rule_id', 'customer_id', 'occurred_at'], unique=False)
    op.add_column('holding', sa.Column('maturity_date', sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column('holding', 'maturity_date')
    op.drop_index('ix_abnormal_transaction_time', table_name='abnormal_transaction')
    op.drop_table('abnormal_transaction')
    op.drop_table('outflow_bucket')
    op.drop_table('transaction_baseline')
