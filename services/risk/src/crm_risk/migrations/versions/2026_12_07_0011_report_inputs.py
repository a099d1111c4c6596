"""Holdings, relationship dates, derived features, the overdue flag, complaints and detected churn, for the credit and churn reports and suitability

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 16:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_CUSTOMER_COLUMNS = (
    ('onboarded_on', sa.Date()), ('closed_on', sa.Date()), ('aum', sa.Numeric(24, 4)),
    ('average_aum_90d', sa.Numeric(24, 4)), ('aum_change_90d', sa.Numeric(24, 4)), ('product_count', sa.Integer()),
    ('last_activity_at', sa.DateTime(timezone=True)), ('features_computed_at', sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for name, type_ in _CUSTOMER_COLUMNS:
        op.add_column('customer', sa.Column(name, type_, nullable=True))
    op.add_column('customer', sa.Column('credit_overdue', sa.Boolean(), server_default=sa.text('false'),
                                        nullable=False))
    op.create_table('holding',
    sa.Column('holding_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Numeric(40, 0), nullable=False),
    sa.Column('removed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('product_code', sa.Text(), server_default='', nullable=False),
    sa.Column('product_type', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('status', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('open_date', sa.Date(), nullable=True),
    sa.Column('close_date', sa.Date(), nullable=True),
    sa.Column('reporting_balance', sa.Numeric(24, 4), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('holding_id', name=op.f('pk_holding'))
    )
    op.create_index('ix_holding_customer', 'holding', ['customer_id'], unique=False)
    op.create_index('ix_holding_open_date', 'holding', ['open_date'], unique=False)
    op.create_index('ix_holding_close_date', 'holding', ['close_date'], unique=False)
    op.create_table('churn_event',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('churn_type', sa.SmallInteger(), nullable=False),
    sa.Column('detected_on', sa.Date(), nullable=False),
    sa.Column('relationship_manager_id', sa.Text(), server_default='', nullable=False),
    sa.Column('branch_id', sa.Text(), server_default='', nullable=False),
    sa.Column('assets_before', sa.Numeric(24, 4), nullable=True),
    sa.Column('tenure_months', sa.Integer(), nullable=True),
    sa.Column('score_band', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('score_drivers', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'churn_type', 'detected_on', name=op.f('pk_churn_event'))
    )
    op.create_index('ix_churn_event_detected', 'churn_event', ['detected_on'], unique=False)
    op.create_table('complaint',
    sa.Column('complaint_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Numeric(40, 0), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('complaint_id', name=op.f('pk_complaint'))
    )
    op.create_index('ix_complaint_customer', 'complaint', ['customer_id', 'filed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_complaint_customer', table_name='complaint')
    op.drop_table('complaint')
    op.drop_index('ix_churn_event_detected', table_name='churn_event')
    op.drop_table('churn_event')
    op.drop_index('ix_holding_close_date', table_name='holding')
    op.drop_index('ix_holding_open_date', table_name='holding')
    op.drop_index('ix_holding_customer', table_name='holding')
    op.drop_table('holding')
    op.drop_column('customer', 'credit_overdue')
    for name, _ in reversed(_CUSTOMER_COLUMNS):
        op.drop_column('customer', name)
