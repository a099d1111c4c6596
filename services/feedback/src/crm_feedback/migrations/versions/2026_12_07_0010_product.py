"""The product a complaint or survey response is about (KPIs by product)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('complaint', sa.Column('product', sa.Text(), server_default='', nullable=False))
    op.add_column('survey_response', sa.Column('product', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    op.drop_column('survey_response', 'product')
    op.drop_column('complaint', 'product')
