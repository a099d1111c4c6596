"""Customers, with the kit's outbox, audit log and idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-23 16:45:38.557114
"""

import sqlalchemy as sa
from alembic import op
from crmkit.kit_schema import create_kit_tables, drop_kit_tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables()
    op.create_table('customer',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('customer_type', sa.SmallInteger(), nullable=False),
    sa.Column('full_name_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('gender', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('nationality', sa.Text(), server_default='', nullable=False),
    sa.Column('id_type', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('id_number_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('id_number_index', sa.LargeBinary(), nullable=True),
    sa.Column('id_issuing_country', sa.Text(), server_default='', nullable=False),
    sa.Column('id_expires_on', sa.Date(), nullable=True),
    sa.Column('mobile_phone_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('mobile_phone_index', sa.LargeBinary(), nullable=True),
    sa.Column('email_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('email_index', sa.LargeBinary(), nullable=True),
    sa.Column('address_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('occupation', sa.Text(), server_default='', nullable=False),
    sa.Column('kyc_status', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('risk_tolerance', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('onboarded_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('preferred_language', sa.Text(), server_default='', nullable=False),
    sa.Column('key_id', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer'))
    )
    op.create_index('ix_customer_branch_id', 'customer', ['branch_id', 'customer_id'], unique=False)
    op.create_index('ix_customer_email_index', 'customer', ['email_index'], unique=False)
    op.create_index('ix_customer_id_number_index', 'customer', ['id_number_index'], unique=False)
    op.create_index('ix_customer_mobile_phone_index', 'customer', ['mobile_phone_index'], unique=False)
    op.create_index('ix_customer_relationship_manager_id', 'customer', ['relationship_manager_id', 'customer_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_customer_relationship_manager_id', table_name='customer')
    op.drop_index('ix_customer_mobile_phone_index', table_name='customer')
    op.drop_index('ix_customer_id_number_index', table_name='customer')
    op.drop_index('ix_customer_email_index', table_name='customer')
    op.drop_index('ix_customer_branch_id', table_name='customer')
    op.drop_table('customer')
    drop_kit_tables()
