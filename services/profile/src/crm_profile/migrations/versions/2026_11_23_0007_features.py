"""Derived features: one row per customer, the AUM history, and the refresher's marks

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-23 19:00:00

The recomputation also reads `holding`, `customer_event` and `customer_merge` (other branches of
this history); `migrate` upgrades every head before the service starts.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_feature',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reporting_currency', sa.Text(), nullable=False),
    sa.Column('rfm_window_days', sa.Integer(), nullable=False),
    sa.Column('last_transaction_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recency_days', sa.Integer(), nullable=True),
    sa.Column('frequency', sa.Integer(), nullable=False),
    sa.Column('monetary_minor', sa.BigInteger(), nullable=False),
    sa.Column('aum_minor', sa.BigInteger(), nullable=False),
    sa.Column('average_aum_90d_minor', sa.BigInteger(), nullable=False),
    sa.Column('product_count', sa.Integer(), nullable=False),
    sa.Column('product_type_count', sa.Integer(), nullable=False),
    sa.Column('onboarded_on', sa.Date(), nullable=False),
    sa.Column('tenure_days', sa.Integer(), nullable=False),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('login_count_30d', sa.Integer(), nullable=False),
    sa.Column('visit_count_30d', sa.Integer(), nullable=False),
    sa.Column('transaction_count_30d', sa.Integer(), nullable=False),
    sa.Column('transaction_count_90d', sa.Integer(), nullable=False),
    sa.Column('active_channel_count_90d', sa.Integer(), nullable=False),
    sa.Column('days_since_last_activity', sa.Integer(), nullable=True),
    sa.Column('next_maturity_date', sa.Date(), nullable=True),
    sa.Column('days_to_next_maturity', sa.Integer(), nullable=True),
    sa.Column('next_maturing_holding_id', sa.Text(), nullable=True),
    sa.Column('age_years', sa.Integer(), nullable=True),
    sa.Column('holdings_opened_90d', sa.Integer(), nullable=False),
    sa.Column('holdings_closed_90d', sa.Integer(), nullable=False),
    sa.Column('aum_change_90d_minor', sa.BigInteger(), nullable=False),
    sa.Column('payroll_active', sa.Boolean(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'],
                            name=op.f('fk_customer_feature_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_feature'))
    )
    op.create_table('customer_aum_history',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('aum_minor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'],
                            name=op.f('fk_customer_aum_history_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'effective_on', name=op.f('pk_customer_aum_history'))
    )
    op.create_table('customer_feature_mark',
    sa.Column('mark_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_ids', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('mark_id', name=op.f('pk_customer_feature_mark'))
    )
    # Sums of converted amounts are rounded once, half to even (banker's rounding), to whole
    # minor units; PostgreSQL's round(numeric) rounds half away from zero.
    op.execute("""
        CREATE FUNCTION feature_round_half_even(x numeric) RETURNS numeric
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT CASE WHEN abs(x - trunc(x)) = 0.5 THEN trunc(x) + sign(x) * (abs(trunc(x)) % 2)
                        ELSE round(x) END
        $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION feature_round_half_even(numeric)")
    op.drop_table('customer_feature_mark')
    op.drop_table('customer_aum_history')
    op.drop_table('customer_feature')
