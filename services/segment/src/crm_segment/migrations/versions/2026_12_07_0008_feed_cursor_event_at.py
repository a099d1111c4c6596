"""feed_cursor.event_at: when the newest applied peer event happened (crmkit.peer_feed's lag)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('feed_cursor', sa.Column('event_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('feed_cursor', 'event_at')
