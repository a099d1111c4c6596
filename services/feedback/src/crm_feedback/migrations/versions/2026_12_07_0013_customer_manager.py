"""The customer's relationship manager on each complaint (the manager's book, from profile's feed)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('complaint', sa.Column('customer_manager', sa.Text(), server_default='', nullable=False))
    op.create_index('ix_complaint_customer_manager', 'complaint', ['customer_manager'])


def downgrade() -> None:
    op.drop_index('ix_complaint_customer_manager', table_name='complaint')
    op.drop_column('complaint', 'customer_manager')
