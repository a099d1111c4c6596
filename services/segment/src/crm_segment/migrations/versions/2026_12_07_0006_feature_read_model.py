"""The feature read model fed by profile's change feed, and the cursor of each followed feed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_feature',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('customer_position', sa.Numeric(precision=40, scale=0), nullable=True),
    sa.Column('removed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('customer_type', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('birth_year', sa.SmallInteger(), nullable=True),
    sa.Column('gender', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('nationality', sa.Text(), server_default='', nullable=False),
    sa.Column('kyc_status', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('risk_tolerance', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('onboarded_on', sa.Date(), nullable=True),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('features_position', sa.Numeric(precision=40, scale=0), nullable=True),
    sa.Column('reporting_currency', sa.Text(), server_default='', nullable=False),
    sa.Column('aum', sa.Numeric(precision=28, scale=9), nullable=True),
    sa.Column('average_aum_90d', sa.Numeric(precision=28, scale=9), nullable=True),
    sa.Column('aum_change_90d', sa.Numeric(precision=28, scale=9), nullable=True),
    sa.Column('product_count', sa.Integer(), nullable=True),
    sa.Column('product_type_count', sa.Integer(), nullable=True),
    sa.Column('tenure_days', sa.Integer(), nullable=True),
    sa.Column('recency_days', sa.Integer(), nullable=True),
    sa.Column('frequency', sa.Integer(), nullable=True),
    sa.Column('monetary', sa.Numeric(precision=28, scale=9), nullable=True),
    sa.Column('login_count_30d', sa.Integer(), nullable=True),
    sa.Column('visit_count_30d', sa.Integer(), nullable=True),
    sa.Column('transaction_count_30d', sa.Integer(), nullable=True),
    sa.Column('transaction_count_90d', sa.Integer(), nullable=True),
    sa.Column('active_channel_count_90d', sa.Integer(), nullable=True),
    sa.Column('days_since_last_activity', sa.Integer(), nullable=True),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('age_years', sa.Integer(), nullable=True),
    sa.Column('holdings_opened_90d', sa.Integer(), nullable=True),
    sa.Column('holdings_closed_90d', sa.Integer(), nullable=True),
    sa.Column('payroll_active', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('features_computed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('product_categories', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('next_maturity_on', sa.Date(), nullable=True),
    sa.Column('preferences_position', sa.Numeric(precision=40, scale=0), nullable=True),
    sa.Column('do_not_contact', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('do_not_contact_until', sa.Date(), nullable=True),
    sa.Column('marketing_channels', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('features_as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_feature'))
    )
    op.create_index('ix_customer_feature_features_as_of', 'customer_feature', ['features_as_of'], unique=False)
    op.create_table('feature_consent',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('channel', sa.SmallInteger(), nullable=False),
    sa.Column('position', sa.Numeric(precision=40, scale=0), nullable=False),
    sa.Column('opted_in', sa.Boolean(), nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expire_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('customer_id', 'channel', name=op.f('pk_feature_consent'))
    )
    op.create_table('feature_holding',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('holding_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Numeric(precision=40, scale=0), nullable=False),
    sa.Column('product_type', sa.SmallInteger(), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('maturity_on', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('customer_id', 'holding_id', name=op.f('pk_feature_holding'))
    )
    op.create_table('feed_cursor',
    sa.Column('feed', sa.Text(), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('feed', name=op.f('pk_feed_cursor'))
    )


def downgrade() -> None:
    op.drop_table('feed_cursor')
    op.drop_table('feature_holding')
    op.drop_table('feature_consent')
    op.drop_index('ix_customer_feature_features_as_of', table_name='customer_feature')
    op.drop_table('customer_feature')
