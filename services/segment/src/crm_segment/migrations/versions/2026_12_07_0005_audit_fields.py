"""The field paths, outcome and hash recipe of each audit record

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:00:00
"""

from crmkit.kit_schema import add_audit_outcome_columns, drop_audit_outcome_columns

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_audit_outcome_columns()


def downgrade() -> None:
    drop_audit_outcome_columns()
