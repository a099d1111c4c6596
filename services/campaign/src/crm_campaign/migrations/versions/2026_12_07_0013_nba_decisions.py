"""Next-best-action decisions (each customer's relationship manager is the books', `customer_manager`, 0011)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 16:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nba_decision',
    sa.Column('decision_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('channel', sa.SmallInteger(), nullable=False),
    sa.Column('requester', sa.Text(), nullable=False),
    sa.Column('degraded_reasons', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('actions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('excluded', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('decision_id', name=op.f('pk_nba_decision'))
    )
    op.create_index('ix_nba_decision_customer', 'nba_decision', ['customer_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_nba_decision_customer', table_name='nba_decision')
    op.drop_table('nba_decision')
