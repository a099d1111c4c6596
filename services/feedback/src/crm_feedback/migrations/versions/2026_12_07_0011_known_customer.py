"""Feedback's read model of profile's customers and the cursor of profile's feed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feed_cursor',
    sa.Column('feed', sa.Text(), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('event_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('feed', name=op.f('pk_feed_cursor')),
    )
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
    op.drop_table('feed_cursor')
