"""Segments, with the kit's outbox, audit log and idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-23 16:55:28.809571
"""

import sqlalchemy as sa
from alembic import op
from crmkit.kit_schema import create_kit_tables, drop_kit_tables
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables()
    op.create_table('segment',
    sa.Column('segment_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('rule', sa.Text(), nullable=False),
    sa.Column('evaluation_mode', sa.SmallInteger(), nullable=False),
    sa.Column('refresh_interval_seconds', sa.Integer(), nullable=True),
    sa.Column('rule_version', sa.BigInteger(), server_default='1', nullable=False),
    sa.Column('referenced_features', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('member_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_materialised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_materialise_operation', sa.Text(), server_default='', nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('segment_id', name=op.f('pk_segment'))
    )
    op.create_index('ix_segment_referenced_features', 'segment', ['referenced_features'], unique=False,
                    postgresql_using='gin')
    op.create_index('uq_segment_display_name', 'segment', [sa.literal_column('lower(display_name)')], unique=True)


def downgrade() -> None:
    op.drop_index('uq_segment_display_name', table_name='segment')
    op.drop_index('ix_segment_referenced_features', table_name='segment', postgresql_using='gin')
    op.drop_table('segment')
    drop_kit_tables()
