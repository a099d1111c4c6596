"""SLA clocks: early escalation and business calendars on policies, one row per complaint clock

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('sla_policy', sa.Column('pre_breach_escalation_share', sa.Float(), server_default='0',
                                          nullable=False))
    op.add_column('sla_policy', sa.Column('calendar', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('complaint', sa.Column('respond_escalate_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('complaint', sa.Column('resolve_escalate_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('complaint', sa.Column('escalate_on_breach', sa.Boolean(), server_default=sa.false(),
                                         nullable=False))
    op.add_column('complaint_step', sa.Column('escalation_trigger', sa.SmallInteger(), server_default='0',
                                              nullable=False))
    op.create_table('sla_clock',
    sa.Column('complaint_id', sa.Text(), nullable=False),
    sa.Column('clock', sa.SmallInteger(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('sla_policy', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('escalate_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalate_on_breach', sa.Boolean(), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('breached_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('breach_category', sa.SmallInteger(), nullable=True),
    sa.Column('breach_priority', sa.SmallInteger(), nullable=True),
    sa.Column('breach_branch_id', sa.Text(), nullable=True),
    sa.Column('breach_assignee', sa.Text(), nullable=True),
    sa.Column('breach_escalation_level', sa.SmallInteger(), nullable=True),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaint.complaint_id'],
                            name=op.f('fk_sla_clock_complaint_id_complaint')),
    sa.PrimaryKeyConstraint('complaint_id', 'clock', 'cycle', name=op.f('pk_sla_clock')),
    )
    op.create_index('ix_sla_clock_running_due', 'sla_clock', ['due_at'],
                    postgresql_where=sa.text('stopped_at IS NULL'))
    op.create_index('ix_sla_clock_running_escalate', 'sla_clock', ['escalate_at'],
                    postgresql_where=sa.text('stopped_at IS NULL AND escalated_at IS NULL AND breached_at IS NULL'))
    op.create_index('ix_sla_clock_due_at', 'sla_clock', ['due_at'])
    # Clocks of complaints filed before this revision, from their deadlines (the resolve clock
    # of the current cycle only: earlier cycles' deadlines were not kept).
    op.execute("""
        INSERT INTO sla_clock (complaint_id, clock, cycle, sla_policy, started_at, due_at, escalate_on_breach,
                               stopped_at, cancelled)
        SELECT complaint_id, 1, 0, sla_policy, received_at, respond_by, false,
               COALESCE(responded_at, CASE WHEN close_reason IN (3, 4) THEN closed_at END),
               responded_at IS NULL AND close_reason IN (3, 4)
        FROM complaint
        UNION ALL
        SELECT complaint_id, 2, reopen_count, sla_policy, received_at, resolve_by, false,
               COALESCE(resolved_at, CASE WHEN close_reason IN (3, 4) THEN closed_at END),
               resolved_at IS NULL AND close_reason IN (3, 4)
        FROM complaint
    """)


def downgrade() -> None:
    op.drop_index('ix_sla_clock_due_at', table_name='sla_clock')
    op.drop_index('ix_sla_clock_running_escalate', table_name='sla_clock')
    op.drop_index('ix_sla_clock_running_due', table_name='sla_clock')
    op.drop_table('sla_clock')
    op.drop_column('complaint_step', 'escalation_trigger')
    op.drop_column('complaint', 'escalate_on_breach')
    op.drop_column('complaint', 'resolve_escalate_at')
    op.drop_column('complaint', 'respond_escalate_at')
    op.drop_column('sla_policy', 'calendar')
    op.drop_column('sla_policy', 'pre_breach_escalation_share')
