"""Campaigns with their transitions and offers, and the kit's outbox, audit log and idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:10:00.000000
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
    op.create_table('campaign',
    sa.Column('campaign_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('type', sa.SmallInteger(), nullable=False),
    sa.Column('state', sa.SmallInteger(), nullable=False),
    sa.Column('segment', sa.Text(), server_default='', nullable=False),
    sa.Column('active_start_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('active_end_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('contact_policy', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('holdout_percentage', sa.Numeric(precision=5, scale=2), server_default='0', nullable=False),
    sa.Column('max_contacts', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('attribution_window_seconds', sa.Integer(), nullable=True),
    sa.Column('fixed_cost_currency', sa.Text(), nullable=True),
    sa.Column('fixed_cost_amount', sa.Numeric(precision=20, scale=9), nullable=True),
    sa.Column('channel_costs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('submitter', sa.Text(), server_default='', nullable=False),
    sa.Column('state_reason', sa.Text(), server_default='', nullable=False),
    sa.Column('scheduled_launch_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('launched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('audience_operation', sa.Text(), server_default='', nullable=False),
    sa.Column('target_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('control_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_campaign'))
    )
    op.create_index('ix_campaign_segment', 'campaign', ['segment'], unique=False)
    op.create_index('ix_campaign_state', 'campaign', ['state', 'updated_at'], unique=False)
    op.create_index('ix_campaign_updated_at', 'campaign', ['updated_at', 'campaign_id'], unique=False)
    op.create_table('campaign_transition',
    sa.Column('campaign_transition_id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('campaign_id', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('from_state', sa.SmallInteger(), nullable=False),
    sa.Column('to_state', sa.SmallInteger(), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('comment', sa.Text(), server_default='', nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.campaign_id'], name=op.f('fk_campaign_transition_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_transition_id', name=op.f('pk_campaign_transition'))
    )
    op.create_index('ix_campaign_transition_campaign_id', 'campaign_transition', ['campaign_id', 'campaign_transition_id'], unique=False)
    op.create_table('offer',
    sa.Column('campaign_id', sa.Text(), nullable=False),
    sa.Column('offer_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('product_code', sa.Text(), nullable=False),
    sa.Column('product_risk_level', sa.SmallInteger(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('expected_value_currency', sa.Text(), nullable=False),
    sa.Column('expected_value_amount', sa.Numeric(precision=20, scale=9), nullable=False),
    sa.Column('eligibility_segment', sa.Text(), server_default='', nullable=False),
    sa.Column('excluded_product_codes', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('channels', postgresql.ARRAY(sa.SmallInteger()), server_default='{}', nullable=False),
    sa.Column('contents', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('valid_start_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_end_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('conversion_points', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.campaign_id'], name=op.f('fk_offer_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'offer_id', name=op.f('pk_offer'))
    )


def downgrade() -> None:
    op.drop_table('offer')
    op.drop_index('ix_campaign_transition_campaign_id', table_name='campaign_transition')
    op.drop_table('campaign_transition')
    op.drop_index('ix_campaign_updated_at', table_name='campaign')
    op.drop_index('ix_campaign_state', table_name='campaign')
    op.drop_index('ix_campaign_segment', table_name='campaign')
    op.drop_table('campaign')
    drop_kit_tables()
