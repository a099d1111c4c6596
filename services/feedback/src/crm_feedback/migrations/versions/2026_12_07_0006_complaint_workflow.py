"""The complaint workflow: resolution and closure columns, notes, and the step timeline

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_COLUMNS = (
    ('resolution_outcome', sa.SmallInteger(), '0', False),
    ('resolution_summary_sealed', sa.LargeBinary(), None, True),
    ('resolution_root_cause', sa.Text(), '', False),
    ('compensation_currency', sa.Text(), '', False),
    ('compensation_amount', sa.Numeric(24, 9), None, True),
    ('resolver', sa.Text(), '', False),
    ('resolution_at', sa.DateTime(timezone=True), None, True),
    ('close_reason', sa.SmallInteger(), '0', False),
    ('duplicate_of', sa.Text(), '', False),
    ('reopen_count', sa.Integer(), '0', False),
    ('closed_at', sa.DateTime(timezone=True), None, True),
)


def upgrade() -> None:
    for name, type_, default, nullable in _COLUMNS:
        op.add_column('complaint', sa.Column(name, type_, server_default=default, nullable=nullable))
    op.create_table('complaint_note',
    sa.Column('complaint_id', sa.Text(), sa.ForeignKey('complaint.complaint_id'), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.SmallInteger(), nullable=False),
    sa.Column('text_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('key_id', sa.Text(), nullable=False),
    sa.Column('contact_channel', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('author', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('complaint_id', 'note_id'),
    )
    op.create_table('complaint_step',
    sa.Column('complaint_step_id', sa.BigInteger(), sa.Identity(), nullable=False),
    sa.Column('complaint_id', sa.Text(), sa.ForeignKey('complaint.complaint_id'), nullable=False),
    sa.Column('action', sa.SmallInteger(), nullable=False),
    sa.Column('from_status', sa.SmallInteger(), nullable=False),
    sa.Column('to_status', sa.SmallInteger(), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assignee', sa.Text(), server_default='', nullable=False),
    sa.Column('escalation_level', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('complaint_step_id'),
    )
    op.create_index('ix_complaint_step_complaint_id', 'complaint_step', ['complaint_id', 'complaint_step_id'])


def downgrade() -> None:
    op.drop_index('ix_complaint_step_complaint_id', table_name='complaint_step')
    op.drop_table('complaint_step')
    op.drop_table('complaint_note')
    for name, *_ in reversed(_COLUMNS):
        op.drop_column('complaint', name)
