"""Index customers by creation time, for the stale-data list

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 21:40:00

A field with no confirmation row counts as confirmed at the customer's creation
(history.repository.stale), so the stale list walks customers in `created_at` order; without
this index that is a scan of the whole table per listed field (about 2 s at 1M customers).
Bulk imports stamp all their rows with one time, so the index costs them little. Built
CONCURRENTLY: a bank's customer table must stay writable while it builds.
"""

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index('ix_customer_created_at', 'customer', ['created_at', 'customer_id'], unique=False,
                        postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index('ix_customer_created_at', table_name='customer', postgresql_concurrently=True,
                      if_exists=True)
