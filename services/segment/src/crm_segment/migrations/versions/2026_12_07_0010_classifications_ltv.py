"""Standard classifications and lifetime value: value-tier definitions (seeded with the shipped
defaults), the RFM run's cuts, each customer's classification on the read model's row, per-day
transaction totals from profile's event feed, and lifetime-value models

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 18:00:00
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_AMOUNT = sa.Numeric(28, 9)
_CLASSIFICATION_COLUMNS: list[sa.Column[Any]] = [
    sa.Column('rfm_window_days', sa.Integer(), nullable=True),
    sa.Column('transactions_position', sa.Numeric(40, 0), nullable=True),
    sa.Column('value_tier', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('value_tier_since', sa.Date(), nullable=True),
    sa.Column('previous_value_tier', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('qualifying_aum', _AMOUNT, nullable=True),
    sa.Column('downgrade_due_on', sa.Date(), nullable=True),
    sa.Column('activity_layer', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('activity_layer_since', sa.Date(), nullable=True),
    sa.Column('lifecycle_stage', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('lifecycle_stage_since', sa.Date(), nullable=True),
    sa.Column('rfm_recency_score', sa.SmallInteger(), nullable=True),
    sa.Column('rfm_frequency_score', sa.SmallInteger(), nullable=True),
    sa.Column('rfm_monetary_score', sa.SmallInteger(), nullable=True),
    sa.Column('rfm_segment', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('expected_lifetime_value', _AMOUNT, nullable=True),
    sa.Column('classified_at', sa.DateTime(timezone=True), nullable=True),
]

# The shipped tier definitions (crm_segment.classifications.model as of this revision), in CNY fen.
_TIERS = [
    # tier, name, min aum, min ltv, min inflow, min products, grace, dedicated RM, priority, response h,
    # contacts/week, /month, care programme, min contacts/year, book size
    (1, 'Private Banking', 600_000_000, None, None, None, 3, True, True, 4, 1, 2, 'Private banker care', 24, 50),
    (2, 'VIP', 50_000_000, None, None, None, 3, True, True, 12, 1, 3, 'Wealth relationship care', 12, 300),
    (3, 'Mass Affluent', 5_000_000, None, None, None, 3, False, True, 24, 2, 4, 'Relationship team care', 4, 0),
    (5, 'Potential', None, 1_000_000, 2_000_000, 2, 0, False, False, 48, 2, 6, 'Growth starter', 2, 0),
    (4, 'Mass', None, None, None, None, 0, False, False, 48, 2, 4, 'Digital self-service', 0, 0),
]


def upgrade() -> None:
    for column in _CLASSIFICATION_COLUMNS:
        op.add_column('customer_feature', column)
    op.create_index('ix_customer_feature_value_tier', 'customer_feature', ['value_tier'])
    op.create_table('feature_transaction_day',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('amount', _AMOUNT, nullable=False),
    sa.Column('transaction_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'day', name=op.f('pk_feature_transaction_day'))
    )
    definition = op.create_table('value_tier_definition',
    sa.Column('tier', sa.SmallInteger(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('min_average_aum_minor', sa.BigInteger(), nullable=True),
    sa.Column('min_expected_lifetime_value_minor', sa.BigInteger(), nullable=True),
    sa.Column('min_inflow_90d_minor', sa.BigInteger(), nullable=True),
    sa.Column('min_product_count', sa.Integer(), nullable=True),
    sa.Column('downgrade_grace_months', sa.Integer(), nullable=False),
    sa.Column('dedicated_relationship_manager', sa.Boolean(), nullable=False),
    sa.Column('priority_service', sa.Boolean(), nullable=False),
    sa.Column('complaint_response_hours', sa.Integer(), nullable=False),
    sa.Column('max_marketing_contacts_per_week', sa.Integer(), nullable=False),
    sa.Column('max_marketing_contacts_per_month', sa.Integer(), nullable=False),
    sa.Column('care_programme', sa.Text(), nullable=False),
    sa.Column('min_contacts_per_year', sa.Integer(), nullable=False),
    sa.Column('max_customers_per_manager', sa.Integer(), nullable=False),
    sa.Column('benefits', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('updater', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tier', name=op.f('pk_value_tier_definition'))
    )
    names = ('tier', 'display_name', 'min_average_aum_minor', 'min_expected_lifetime_value_minor',
             'min_inflow_90d_minor', 'min_product_count', 'downgrade_grace_months', 'dedicated_relationship_manager',
             'priority_service', 'complaint_response_hours', 'max_marketing_contacts_per_week',
             'max_marketing_contacts_per_month', 'care_programme', 'min_contacts_per_year',
             'max_customers_per_manager')
    op.execute(definition.insert().values(
        [{**dict(zip(names, row, strict=True)), 'benefits': [], 'version': 1, 'updater': 'system:seed',
          'updated_at': sa.func.now()} for row in _TIERS]))
    op.create_table('classification_run',
    sa.Column('run_id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scored_customers', sa.BigInteger(), nullable=False),
    sa.Column('rfm_boundaries', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('classified_customers', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('definitions_version', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_classification_run'))
    )
    op.create_table('lifetime_value_model',
    sa.Column('model_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('operation_id', sa.UUID(), nullable=False),
    sa.Column('calibration_start', sa.Date(), nullable=False),
    sa.Column('calibration_end', sa.Date(), nullable=False),
    sa.Column('holdout_start', sa.Date(), nullable=True),
    sa.Column('holdout_end', sa.Date(), nullable=True),
    sa.Column('time_unit_days', sa.Integer(), nullable=False),
    sa.Column('population_segment_id', sa.Text(), server_default='', nullable=False),
    sa.Column('penalizer', sa.Float(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('annual_discount_rate', sa.Numeric(10, 9), nullable=False),
    sa.Column('customer_count', sa.BigInteger(), nullable=True),
    sa.Column('repeat_customer_count', sa.BigInteger(), nullable=True),
    sa.Column('r', sa.Float(), nullable=True),
    sa.Column('alpha', sa.Float(), nullable=True),
    sa.Column('a', sa.Float(), nullable=True),
    sa.Column('b', sa.Float(), nullable=True),
    sa.Column('bgnbd_log_likelihood', sa.Float(), nullable=True),
    sa.Column('p', sa.Float(), nullable=True),
    sa.Column('q', sa.Float(), nullable=True),
    sa.Column('gamma', sa.Float(), nullable=True),
    sa.Column('gamma_gamma_log_likelihood', sa.Float(), nullable=True),
    sa.Column('frequency_value_correlation', sa.Float(), nullable=True),
    sa.Column('holdout_predicted', sa.Float(), nullable=True),
    sa.Column('holdout_actual', sa.BigInteger(), nullable=True),
    sa.Column('holdout_mean_absolute_error', sa.Float(), nullable=True),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_lifetime_value_model')),
    sa.UniqueConstraint('operation_id', name=op.f('uq_lifetime_value_model_operation_id'))
    )
    op.create_index('ix_lifetime_value_model_fitted_at', 'lifetime_value_model', ['fitted_at'])


def downgrade() -> None:
    op.drop_index('ix_lifetime_value_model_fitted_at', table_name='lifetime_value_model')
    op.drop_table('lifetime_value_model')
    op.drop_table('classification_run')
    op.drop_table('value_tier_definition')
    op.drop_table('feature_transaction_day')
    op.drop_index('ix_customer_feature_value_tier', table_name='customer_feature')
    for column in reversed(_CLASSIFICATION_COLUMNS):
        op.drop_column('customer_feature', column.name)
