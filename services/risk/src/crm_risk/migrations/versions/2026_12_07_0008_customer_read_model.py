"""Risk's customer read model: the facts suitability, alerts and scoring decide on

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('risk_tolerance', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('assessment_expiry', sa.Date(), nullable=True),
    sa.Column('kyc_status', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('vulnerable', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer'))
    )
    op.create_index('ix_customer_manager', 'customer', ['relationship_manager_id', 'customer_id'])


def downgrade() -> None:
    op.drop_index('ix_customer_manager', table_name='customer')
    op.drop_table('customer')
