"""Join the sub-domain branches (imports, events and holdings, consents and identity, attributes
and history, privacy, features) into one history

Revision ID: 0008
Revises: 0002, 0003, 0004, 0005, 0006, 0007
Create Date: 2026-12-05 20:30:00

The branches were written side by side and share only 0001. From here on the history is linear:
every later revision descends from this one, so `alembic upgrade head` (singular) works again and
an operator sees one current revision per database.
"""

revision = '0008'
down_revision = ('0002', '0003', '0004', '0005', '0006', '0007')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
