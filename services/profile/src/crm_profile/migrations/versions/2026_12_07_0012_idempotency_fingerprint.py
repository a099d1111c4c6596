"""The request's fingerprint on each idempotency key (a reused request_id with another body is refused)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:00:00
"""

from crmkit.kit_schema import add_idempotency_fingerprint, drop_idempotency_fingerprint

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_idempotency_fingerprint()


def downgrade() -> None:
    drop_idempotency_fingerprint()
