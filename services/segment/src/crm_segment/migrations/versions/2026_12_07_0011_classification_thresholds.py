"""Activity-layer and lifecycle-stage thresholds as one stored row an admin edits through the
API (before: code defaults only), seeded with those defaults

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 07:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    thresholds = op.create_table('classification_thresholds',
    sa.Column('singleton', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('core_recency_days', sa.Integer(), nullable=False),
    sa.Column('core_min_activities', sa.Integer(), nullable=False),
    sa.Column('core_min_products', sa.Integer(), nullable=False),
    sa.Column('active_window_days', sa.Integer(), nullable=False),
    sa.Column('acquisition_days', sa.Integer(), nullable=False),
    sa.Column('growth_min_percent', sa.Integer(), nullable=False),
    sa.Column('decline_min_drop_percent', sa.Integer(), nullable=False),
    sa.Column('decline_min_net_closures', sa.Integer(), nullable=False),
    sa.Column('churn_max_aum_minor', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('updater', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('singleton', name=op.f('ck_classification_thresholds_singleton')),
    sa.PrimaryKeyConstraint('singleton', name=op.f('pk_classification_thresholds'))
    )
    # The defaults of `classifications.model.ActivityThresholds` and `LifecycleThresholds`.
    op.execute(thresholds.insert().values(
        singleton=True, core_recency_days=30, core_min_activities=3, core_min_products=3, active_window_days=180,
        acquisition_days=180, growth_min_percent=10, decline_min_drop_percent=30, decline_min_net_closures=1,
        churn_max_aum_minor=10_000, version=1, updater='system:seed', updated_at=sa.func.now()))


def downgrade() -> None:
    op.drop_table('classification_thresholds')
