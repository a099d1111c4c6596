"""Features from feedback's and risk's feeds: each customer's complaints (open or not, when
filed) and current churn score, read by the catalogue's expressions

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feature_complaint',
    sa.Column('complaint_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Numeric(40, 0), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('complaint_id', name=op.f('pk_feature_complaint'))
    )
    op.create_index('ix_feature_complaint_customer_id', 'feature_complaint', ['customer_id', 'filed_at'])
    op.create_table('feature_churn_score',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Numeric(40, 0), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('risk_band', sa.SmallInteger(), nullable=False),
    sa.Column('scored_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_feature_churn_score'))
    )


def downgrade() -> None:
    op.drop_table('feature_churn_score')
    op.drop_index('ix_feature_complaint_customer_id', table_name='feature_complaint')
    op.drop_table('feature_complaint')
