"""Propensity scoring: the offer's offer type, the model artifact's SHA-256 (checked before it is
unpickled to score), and on each dispatch the arbitration score and the model that decided it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 19:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('offer', sa.Column('offer_type', sa.Text(), server_default='', nullable=False))
    op.add_column('propensity_model', sa.Column('artifact_sha256', sa.Text(), nullable=True))
    # Models trained before this revision: their stored bytes are taken as registered.
    op.execute("UPDATE propensity_model SET artifact_sha256 = encode(sha256(artifact), 'hex')")
    op.alter_column('propensity_model', 'artifact_sha256', nullable=False)
    op.add_column('dispatch', sa.Column('arbitration_score', sa.Float(), nullable=True))
    op.add_column('dispatch', sa.Column('propensity_model', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    op.drop_column('dispatch', 'propensity_model')
    op.drop_column('dispatch', 'arbitration_score')
    op.drop_column('propensity_model', 'artifact_sha256')
    op.drop_column('offer', 'offer_type')
