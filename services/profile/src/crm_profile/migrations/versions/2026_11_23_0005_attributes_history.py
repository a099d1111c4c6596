"""Custom attributes, external ids, field change history and confirmations

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-23 17:50:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('customer', sa.Column('source_system', sa.Text(), server_default='crm', nullable=False))
    op.create_table('customer_external_id',
    sa.Column('source_system', sa.Text(), nullable=False),
    sa.Column('external_id', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], name=op.f('fk_customer_external_id_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source_system', 'external_id', name=op.f('pk_customer_external_id'))
    )
    op.create_index('ix_customer_external_id_customer_id', 'customer_external_id', ['customer_id'], unique=False)
    op.create_table('attribute_definition',
    sa.Column('attribute_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('value_type', sa.SmallInteger(), nullable=False),
    sa.Column('validation', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('data_class', sa.SmallInteger(), nullable=False),
    sa.Column('source_system', sa.Text(), nullable=False),
    sa.Column('completeness_expected', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('max_age_days', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('attribute_id', name=op.f('pk_attribute_definition'))
    )
    op.create_table('customer_attribute',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('attribute_id', sa.Text(), nullable=False),
    sa.Column('value_text', sa.Text(), nullable=True),
    sa.Column('value_number', sa.Numeric(), nullable=True),
    sa.Column('value_bool', sa.Boolean(), nullable=True),
    sa.Column('value_date', sa.Date(), nullable=True),
    sa.Column('value_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['attribute_id'], ['attribute_definition.attribute_id'], name=op.f('fk_customer_attribute_attribute_id_attribute_definition')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], name=op.f('fk_customer_attribute_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'attribute_id', name=op.f('pk_customer_attribute'))
    )
    op.create_index('ix_customer_attribute_attribute_id', 'customer_attribute', ['attribute_id', 'customer_id'], unique=False)
    op.create_table('field_change',
    sa.Column('field_change_id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('field', sa.Text(), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('old_text', sa.Text(), nullable=True),
    sa.Column('new_text', sa.Text(), nullable=True),
    sa.Column('old_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('new_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('personal', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('source', sa.SmallInteger(), nullable=False),
    sa.Column('source_system', sa.Text(), server_default='', nullable=False),
    sa.Column('origin', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('field_change_id', name=op.f('pk_field_change'))
    )
    op.create_index('ix_field_change_customer_id', 'field_change', ['customer_id', 'field_change_id'], unique=False)
    op.create_table('field_confirmation',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('field', sa.Text(), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], name=op.f('fk_field_confirmation_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'field', name=op.f('pk_field_confirmation'))
    )
    op.create_index('ix_field_confirmation_field', 'field_confirmation', ['field', 'confirmed_at', 'customer_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_field_confirmation_field', table_name='field_confirmation')
    op.drop_table('field_confirmation')
    op.drop_index('ix_field_change_customer_id', table_name='field_change')
    op.drop_table('field_change')
    op.drop_index('ix_customer_attribute_attribute_id', table_name='customer_attribute')
    op.drop_table('customer_attribute')
    op.drop_table('attribute_definition')
    op.drop_index('ix_customer_external_id_customer_id', table_name='customer_external_id')
    op.drop_table('customer_external_id')
    op.drop_column('customer', 'source_system')
