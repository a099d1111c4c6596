"""The churn model registry and the operations table training runs in

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:20:00
"""

import sqlalchemy as sa
from alembic import op
from crmkit.kit_schema import create_operation_table, drop_operation_table
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_operation_table()
    op.create_table('churn_model',
    sa.Column('churn_model_id', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), sa.Identity(always=True), nullable=False),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('algorithm', sa.SmallInteger(), nullable=False),
    sa.Column('training_spec', sa.LargeBinary(), nullable=False),
    sa.Column('features', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('cross_validation', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('band_thresholds', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('fairness', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('encoding', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('training_data_sha256', sa.Text(), nullable=False),
    sa.Column('artifact', sa.LargeBinary(), nullable=False),
    sa.Column('artifact_sha256', sa.Text(), nullable=False),
    sa.Column('framework_version', sa.Text(), nullable=False),
    sa.Column('training_operation', sa.Text(), nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('promoter', sa.Text(), server_default='', nullable=False),
    sa.Column('promote_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retire_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_reason', sa.Text(), server_default='', nullable=False),
    sa.Column('revision', sa.Integer(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('churn_model_id', name=op.f('pk_churn_model')),
    sa.UniqueConstraint('version', name=op.f('uq_churn_model_version'))
    )
    op.create_index('ux_churn_model_active', 'churn_model', ['status'], unique=True,
                    postgresql_where=sa.text('status = 2'))


def downgrade() -> None:
    op.drop_index('ux_churn_model_active', table_name='churn_model', postgresql_where=sa.text('status = 2'))
    op.drop_table('churn_model')
    drop_operation_table()
