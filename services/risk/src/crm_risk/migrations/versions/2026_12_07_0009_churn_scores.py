"""Current churn scores, one per customer

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 04:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('churn_score',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('churn_model_id', sa.Text(), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('risk_band', sa.SmallInteger(), nullable=False),
    sa.Column('top_drivers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('features_as_of', sa.DateTime(timezone=True), nullable=True),
    sa.Column('score_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decision_audit', sa.Text(), nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_churn_score'))
    )
    op.create_index('ix_churn_score_manager', 'churn_score', ['relationship_manager_id', 'probability'])


def downgrade() -> None:
    op.drop_index('ix_churn_score_manager', table_name='churn_score')
    op.drop_table('churn_score')
