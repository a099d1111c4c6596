"""Complaints, with the kit's outbox, audit log and idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-23 16:54:14.184572
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
    op.execute(sa.schema.CreateSequence(sa.Sequence('complaint_number')))
    op.create_table('complaint',
    sa.Column('complaint_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('channel', sa.SmallInteger(), nullable=False),
    sa.Column('category', sa.SmallInteger(), nullable=False),
    sa.Column('subcategory', sa.Text(), server_default='', nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('description_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('related_resources', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('assignee', sa.Text(), server_default='', nullable=False),
    sa.Column('escalation_level', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sla_policy', sa.Text(), nullable=False),
    sa.Column('respond_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolve_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('filer', sa.Text(), nullable=False),
    sa.Column('key_id', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('complaint_id', name=op.f('pk_complaint'))
    )
    op.create_index('ix_complaint_assignee', 'complaint', ['assignee'], unique=False)
    op.create_index('ix_complaint_created_at', 'complaint', ['created_at', 'complaint_id'], unique=False)
    op.create_index('ix_complaint_customer_id', 'complaint', ['customer_id', 'created_at'], unique=False)
    op.create_index('ix_complaint_filer', 'complaint', ['filer'], unique=False)
    op.create_index('ix_complaint_resolve_by', 'complaint', ['resolve_by', 'complaint_id'], unique=False)
    op.create_index('ix_complaint_respond_by', 'complaint', ['respond_by', 'complaint_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_complaint_respond_by', table_name='complaint')
    op.drop_index('ix_complaint_resolve_by', table_name='complaint')
    op.drop_index('ix_complaint_filer', table_name='complaint')
    op.drop_index('ix_complaint_customer_id', table_name='complaint')
    op.drop_index('ix_complaint_created_at', table_name='complaint')
    op.drop_index('ix_complaint_assignee', table_name='complaint')
    op.drop_table('complaint')
    op.execute(sa.schema.DropSequence(sa.Sequence('complaint_number')))
    drop_kit_tables()
