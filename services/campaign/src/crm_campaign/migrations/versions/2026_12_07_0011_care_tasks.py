"""Care tasks, each customer's relationship manager (the books, from profile's Customer events: the
one copy care, contact history, next best action, loyalty and renewals read), and responses by
customer (contact history)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "care_task",
        sa.Column("care_task_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("assignee", sa.Text, nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("outcome", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("outcome_note", sa.Text, nullable=False, server_default=""),
        sa.Column("contact_channel", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("offer_campaign_id", sa.Text, nullable=False, server_default=""),
        sa.Column("offer_id", sa.Text, nullable=False, server_default=""),
        sa.Column("creator", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_care_task_assignee_due", "care_task", ["assignee", "due_at", "care_task_id"])
    op.create_index("ix_care_task_customer_due", "care_task", ["customer_id", "due_at", "care_task_id"])
    op.create_index("ix_care_task_due", "care_task", ["due_at", "care_task_id"])
    op.create_table(
        "customer_manager",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_customer_manager_manager", "customer_manager", ["relationship_manager_id"])
    # Contact history reads one customer's responses across campaigns.
    op.create_index("ix_offer_response_customer", "offer_response", ["customer_id", "response_time"])


def downgrade() -> None:
    op.drop_index("ix_offer_response_customer", table_name="offer_response")
    op.drop_table("customer_manager")
    op.drop_table("care_task")
