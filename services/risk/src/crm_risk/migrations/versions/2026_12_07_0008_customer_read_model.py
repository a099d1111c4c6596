"""Risk's customer read model (from profile's change feed) and the cursors of the feeds it follows

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from crmkit.kit_schema import create_feed_cursor_table, drop_feed_cursor_table

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_feed_cursor_table()
    op.create_table('customer',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('customer_position', sa.Numeric(precision=40, scale=0), nullable=True),
    sa.Column('removed', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('risk_tolerance', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('assessment_expiry', sa.Date(), nullable=True),
    sa.Column('kyc_status', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('birth_year', sa.SmallInteger(), nullable=True),
    sa.Column('vulnerable', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('feature_values', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('features_position', sa.Numeric(precision=40, scale=0), nullable=True),
    sa.Column('age_years', sa.SmallInteger(), nullable=True),
    sa.Column('age_on', sa.Date(), nullable=True),
    sa.Column('data_as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer'))
    )
    op.create_index('ix_customer_manager', 'customer', ['relationship_manager_id', 'customer_id'])


def downgrade() -> None:
    op.drop_index('ix_customer_manager', table_name='customer')
    op.drop_table('customer')
    drop_feed_cursor_table()
