"""Segment membership and its history, and the operations table materialisations run in

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crmkit.kit_schema import create_operation_table, drop_operation_table

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_operation_table()
    op.create_table('segment_member',
    sa.Column('segment_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rule_version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('segment_id', 'customer_id', name=op.f('pk_segment_member'))
    )
    op.create_table('membership_change',
    sa.Column('change_id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('segment_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('cause', sa.SmallInteger(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rule_version', sa.BigInteger(), nullable=False),
    sa.Column('operation_id', postgresql.UUID(as_uuid=True), nullable=True),
    sa.Column('source_event_id', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('change_id', name=op.f('pk_membership_change'))
    )
    op.create_index('ix_membership_change_segment', 'membership_change',
                    ['segment_id', sa.text('changed_at DESC'), sa.text('change_id DESC')])
    op.create_index('ix_membership_change_customer', 'membership_change',
                    ['customer_id', sa.text('changed_at DESC'), sa.text('change_id DESC')])


def downgrade() -> None:
    op.drop_index('ix_membership_change_customer', table_name='membership_change')
    op.drop_index('ix_membership_change_segment', table_name='membership_change')
    op.drop_table('membership_change')
    op.drop_table('segment_member')
    drop_operation_table()
