"""Text classifier registry, the operations table its training runs in, and the complaint's
predicted-category columns

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:40:00
"""

import sqlalchemy as sa
from alembic import op
from crmkit.kit_schema import create_operation_table, drop_operation_table
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_operation_table()
    op.create_table('text_classifier',
    sa.Column('text_classifier_id', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), sa.Identity(always=True), nullable=False),
    sa.Column('target', sa.SmallInteger(), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('training_spec', sa.LargeBinary(), nullable=False),
    sa.Column('labels', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('dropped_labels', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('tuning', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('algorithm', sa.Text(), nullable=False),
    sa.Column('training_data_sha256', sa.Text(), nullable=False),
    sa.Column('artifact', sa.LargeBinary(), nullable=False),
    sa.Column('artifact_sha256', sa.Text(), nullable=False),
    sa.Column('framework_version', sa.Text(), nullable=False),
    sa.Column('training_operation', sa.Text(), nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('activate_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retire_time', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('text_classifier_id', name=op.f('pk_text_classifier')),
    sa.UniqueConstraint('version', name=op.f('uq_text_classifier_version'))
    )
    op.create_index('ux_text_classifier_active', 'text_classifier', ['target'], unique=True,
                    postgresql_where=sa.text('status = 2'))
    op.add_column('complaint', sa.Column('category_predicted', sa.Boolean(), server_default=sa.false(),
                                         nullable=False))
    op.add_column('complaint', sa.Column('category_label', sa.Text(), server_default='', nullable=False))
    op.add_column('complaint', sa.Column('category_confidence', sa.Float(), server_default='0', nullable=False))
    op.add_column('complaint', sa.Column('category_model_version', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    op.drop_column('complaint', 'category_model_version')
    op.drop_column('complaint', 'category_confidence')
    op.drop_column('complaint', 'category_label')
    op.drop_column('complaint', 'category_predicted')
    op.drop_index('ux_text_classifier_active', table_name='text_classifier', postgresql_where=sa.text('status = 2'))
    op.drop_table('text_classifier')
    drop_operation_table()
