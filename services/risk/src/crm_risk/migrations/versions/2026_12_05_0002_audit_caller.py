"""The caller's roles and the RPC on each audit record

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 21:20:00
"""

from crmkit.kit_schema import add_audit_call_columns, drop_audit_call_columns

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_audit_call_columns()


def downgrade() -> None:
    drop_audit_call_columns()
