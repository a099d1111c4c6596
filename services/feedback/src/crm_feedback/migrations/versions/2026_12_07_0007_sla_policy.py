"""SLA policies by complaint category and priority

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sla_policy',
    sa.Column('sla_policy_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('category', sa.SmallInteger(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('respond_within_seconds', sa.Integer(), nullable=False),
    sa.Column('resolve_within_seconds', sa.Integer(), nullable=False),
    sa.Column('escalate_on_breach', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('clock_mode', sa.SmallInteger(), server_default='1', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('respond_within_seconds > 0 AND resolve_within_seconds >= respond_within_seconds',
                       name=op.f('ck_sla_policy_targets')),
    sa.PrimaryKeyConstraint('sla_policy_id', name=op.f('pk_sla_policy')),
    sa.UniqueConstraint('category', 'priority', name=op.f('uq_sla_policy_category_priority')),
    )


def downgrade() -> None:
    op.drop_table('sla_policy')
