"""Read models of segment's value tiers: each customer's tier and each tier's response time

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
    op.create_table('customer_tier',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('value_tier', sa.SmallInteger(), nullable=False),
    sa.Column('event_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_tier')),
    )
    op.create_table('tier_standard',
    sa.Column('value_tier', sa.SmallInteger(), nullable=False),
    sa.Column('max_response_seconds', sa.Integer(), nullable=True),
    sa.Column('event_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('value_tier', name=op.f('pk_tier_standard')),
    )


def downgrade() -> None:
    op.drop_table('tier_standard')
    op.drop_table('customer_tier')
