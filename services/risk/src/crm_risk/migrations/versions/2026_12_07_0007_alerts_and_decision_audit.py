"""Alerts with their workflow state, and the decision audit

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 03:50:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert',
    sa.Column('alert_id', sa.Text(), nullable=False),
    sa.Column('alert_rule_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('severity', sa.SmallInteger(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('assignee', sa.Text(), server_default='', nullable=False),
    sa.Column('trigger_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('respond_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalate_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('dismiss_reason', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('close_note', sa.Text(), server_default='', nullable=False),
    sa.Column('close_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_audit', sa.Text(), server_default='', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('alert_id', name=op.f('pk_alert'))
    )
    op.create_index('ix_alert_due', 'alert', ['due_time', 'alert_id'])
    op.create_index('ix_alert_trigger', 'alert', ['trigger_time', 'alert_id'])
    op.create_index('ix_alert_customer', 'alert', ['customer_id'])
    op.create_index('ix_alert_escalation', 'alert', ['due_time'], postgresql_where=sa.text('status = 1'))
    op.create_index('ix_alert_open_rule', 'alert', ['alert_rule_id'],
                    postgresql_where=sa.text('status IN (1, 2, 3, 6)'))
    op.create_table('decision_audit',
    sa.Column('decision_audit_id', sa.Text(), nullable=False),
    sa.Column('sequence', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('decision_type', sa.SmallInteger(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('decided_by', sa.Text(), nullable=False),
    sa.Column('decider_version', sa.Text(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('reason_codes', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('inputs', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('inputs_sha256', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), server_default='', nullable=False),
    sa.Column('requester', sa.Text(), nullable=False),
    sa.Column('trace_id', sa.Text(), server_default='', nullable=False),
    sa.Column('decide_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('decision_audit_id', name=op.f('pk_decision_audit')),
    sa.UniqueConstraint('sequence', name=op.f('uq_decision_audit_sequence'))
    )
    op.create_index('ix_decision_audit_customer', 'decision_audit', ['customer_id', 'sequence'])
    op.create_index('ix_decision_audit_context', 'decision_audit', ['context', 'sequence'],
                    postgresql_where=sa.text("context <> ''"))


def downgrade() -> None:
    op.drop_index('ix_decision_audit_context', table_name='decision_audit')
    op.drop_index('ix_decision_audit_customer', table_name='decision_audit')
    op.drop_table('decision_audit')
    op.drop_index('ix_alert_open_rule', table_name='alert')
    op.drop_index('ix_alert_escalation', table_name='alert')
    op.drop_index('ix_alert_customer', table_name='alert')
    op.drop_index('ix_alert_trigger', table_name='alert')
    op.drop_index('ix_alert_due', table_name='alert')
    op.drop_table('alert')
