"""The cursors of the peer feeds campaign follows (feedback's, into the open-complaint read model)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:00:00
"""

from crmkit.kit_schema import create_feed_cursor_table, drop_feed_cursor_table

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_feed_cursor_table()


def downgrade() -> None:
    drop_feed_cursor_table()
