"""Feedback's read model of profile's customers and the cursor of profile's feed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op

from crmkit import kit_schema

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    kit_schema.create_feed_cursor_table()
    op.create_table('known_customer',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('state', sa.SmallInteger(), nullable=False),
    sa.Column('merged_into', sa.Text(), server_default='', nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('event_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_known_customer')),
    )


def downgrade() -> None:
    op.drop_table('known_customer')
    kit_schema.drop_feed_cursor_table()
