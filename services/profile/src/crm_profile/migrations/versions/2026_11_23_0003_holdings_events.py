"""Holdings, and the month-partitioned customer event store with its id ledger

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23 18:00:00

`customer_event` is created without partitions: the service creates each month's partition on
demand (and this month's and next month's at start-up); see `crm_profile.events.repository`.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('holding',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('holding_id', sa.Text(), nullable=False),
    sa.Column('product_code', sa.Text(), nullable=False),
    sa.Column('product_type', sa.SmallInteger(), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('balance_minor', sa.BigInteger(), nullable=False),
    sa.Column('balance_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reporting_currency', sa.Text(), nullable=True),
    sa.Column('reporting_balance_minor', sa.BigInteger(), nullable=True),
    sa.Column('open_date', sa.Date(), nullable=False),
    sa.Column('maturity_date', sa.Date(), nullable=True),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('close_date', sa.Date(), nullable=True),
    sa.Column('source_system', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('balance_minor >= 0', name=op.f('ck_holding_balance_not_negative')),
    sa.CheckConstraint('maturity_date IS NULL OR maturity_date >= open_date', name=op.f('ck_holding_maturity_after_open')),
    sa.CheckConstraint('close_date IS NULL OR close_date >= open_date', name=op.f('ck_holding_close_after_open')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], name=op.f('fk_holding_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'holding_id', name=op.f('pk_holding'))
    )
    op.create_index('ix_holding_maturity_date', 'holding', ['maturity_date', 'customer_id', 'holding_id'],
                    unique=False, postgresql_where=sa.text('maturity_date IS NOT NULL'))

    op.execute("""
        CREATE TABLE customer_event (
            customer_id text COLLATE "C" NOT NULL,
            occur_time timestamptz NOT NULL,
            event_id text COLLATE "C" NOT NULL,
            event_type smallint NOT NULL,
            channel smallint NOT NULL,
            ingest_time timestamptz NOT NULL,
            source_system text NOT NULL,
            branch_id text,
            product_code text,
            currency text,
            amount_minor bigint,
            direction smallint,
            transaction_kind smallint,
            holding_id text,
            balance_after_minor bigint,
            merchant_category_code text,
            application_id text,
            application_outcome smallint,
            login_success boolean,
            login_method text,
            properties jsonb,
            original_customer_id text
        ) PARTITION BY RANGE (occur_time)
    """)
    op.execute("CREATE INDEX ix_customer_event_customer_time ON customer_event (customer_id, occur_time DESC)")
    op.create_table('customer_event_id',
    sa.Column('event_id', sa.Text(collation='C'), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_customer_event_id'))
    )


def downgrade() -> None:
    op.drop_table('customer_event_id')
    op.execute("DROP TABLE customer_event")  # its partitions go with it
    op.drop_index('ix_holding_maturity_date', table_name='holding')
    op.drop_table('holding')
