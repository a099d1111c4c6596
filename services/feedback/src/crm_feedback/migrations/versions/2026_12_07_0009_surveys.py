"""Surveys, their question versions and responses

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 13:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('survey',
    sa.Column('survey_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('channels', postgresql.ARRAY(sa.SmallInteger()), nullable=False),
    sa.Column('touchpoint', sa.Text(), server_default='', nullable=False),
    sa.Column('default_language_code', sa.Text(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('allow_anonymous', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('response_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('revision', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('survey_id', name=op.f('pk_survey')),
    )
    op.create_index('ix_survey_created_at', 'survey', ['created_at', 'survey_id'])
    op.create_table('survey_version',
    sa.Column('survey_id', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('questions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['survey_id'], ['survey.survey_id'], ondelete='CASCADE',
                            name=op.f('fk_survey_version_survey_id_survey')),
    sa.PrimaryKeyConstraint('survey_id', 'version', name=op.f('pk_survey_version')),
    )
    op.create_table('survey_response',
    sa.Column('response_id', sa.Text(), nullable=False),
    sa.Column('survey_id', sa.Text(), nullable=False),
    sa.Column('survey_version', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Text(), server_default='', nullable=False),
    sa.Column('channel', sa.SmallInteger(), nullable=False),
    sa.Column('subject', sa.Text(), server_default='', nullable=False),
    sa.Column('answers_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('key_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.Column('nps_category', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('sentiment', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('language_code', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('touchpoint', sa.Text(), server_default='', nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['survey_id'], ['survey.survey_id'], name=op.f('fk_survey_response_survey_id_survey')),
    sa.PrimaryKeyConstraint('response_id', name=op.f('pk_survey_response')),
    )
    op.create_index('uq_survey_response_customer_subject', 'survey_response', ['survey_id', 'customer_id', 'subject'],
                    unique=True, postgresql_where=sa.text("customer_id <> ''"))
    op.create_index('ix_survey_response_submitted_at', 'survey_response', ['submitted_at', 'response_id'])
    op.create_index('ix_survey_response_survey_id', 'survey_response', ['survey_id', 'submitted_at'])


def downgrade() -> None:
    op.drop_table('survey_response')
    op.drop_table('survey_version')
    op.drop_index('ix_survey_created_at', table_name='survey')
    op.drop_table('survey')
