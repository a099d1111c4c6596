"""Outbox rows stamped with their transaction's id: the change feed's order without a lock

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:00:00
"""

from crmkit.kit_schema import add_outbox_xid, drop_outbox_xid

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_xid()


def downgrade() -> None:
    drop_outbox_xid()
