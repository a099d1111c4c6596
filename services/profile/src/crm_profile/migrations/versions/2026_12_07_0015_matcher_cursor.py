"""The matcher keeps the change feed's own cursor ("<xid>.<sequence>"), not a sequence number

The outbox is ordered by (transaction id, sequence) since 0013: a sequence number alone cannot
say where the matcher stands. A stored number is turned into the position of the event it
names (events written before 0013 carry xid 0, which is also right when the event is gone).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 12:00:00
"""

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE matcher_state ALTER COLUMN cursor DROP DEFAULT")
    op.execute("ALTER TABLE matcher_state ALTER COLUMN cursor TYPE text USING cursor::text")
    op.execute("""
        UPDATE matcher_state SET cursor = CASE WHEN cursor = '0' THEN '' ELSE
            coalesce((SELECT xid::text FROM outbox_event WHERE outbox_event.cursor = matcher_state.cursor::bigint),
                     '0') || '.' || cursor END
    """)
    op.execute("ALTER TABLE matcher_state ALTER COLUMN cursor SET DEFAULT ''")


def downgrade() -> None:
    # Back to the sequence number of the event read last (what the earlier matcher resumes after).
    op.execute("ALTER TABLE matcher_state ALTER COLUMN cursor DROP DEFAULT")
    op.execute("""
        ALTER TABLE matcher_state ALTER COLUMN cursor TYPE bigint USING
            CASE WHEN cursor = '' THEN 0 ELSE split_part(cursor, '.', 2)::bigint END
    """)
    op.execute("ALTER TABLE matcher_state ALTER COLUMN cursor SET DEFAULT 0")
