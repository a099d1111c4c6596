"""Features from campaign's feed: each dispatch and offer response of a customer (when contacted,
when responded and whether with interest), read by the catalogue's contact-fatigue and responder
expressions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 20:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feature_campaign_touch',
    sa.Column('resource_name', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Numeric(40, 0), nullable=False),
    sa.Column('contacted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('positive', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('resource_name', name=op.f('pk_feature_campaign_touch'))
    )
    op.create_index('ix_feature_campaign_touch_customer_id', 'feature_campaign_touch', ['customer_id'])


def downgrade() -> None:
    op.drop_index('ix_feature_campaign_touch_customer_id', table_name='feature_campaign_touch')
    op.drop_table('feature_campaign_touch')
