"""Dispatches: one row per (campaign, customer, channel), queued or suppressed by the audience build

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatch",
        sa.Column("dispatch_id", sa.Text, primary_key=True),
        sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaign.campaign_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("offer_id", sa.Text, nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("channel_reason", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("template_id", sa.Text, nullable=False, server_default=""),
        sa.Column("headline", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("suppression_reason", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("provider_message_id", sa.Text, nullable=False, server_default=""),
        sa.Column("last_error", pg.JSONB),
        sa.Column("not_before_at", sa.DateTime(timezone=True)),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("campaign_id", "customer_id", "channel", name="uq_dispatch_campaign_customer_channel"),
    )
    op.create_index("ix_dispatch_campaign_created", "dispatch", ["campaign_id", "created_at", "dispatch_id"])
    op.create_index("ix_dispatch_customer_created", "dispatch", ["customer_id", "created_at", "dispatch_id"])
    op.create_index("ix_dispatch_pending", "dispatch", ["created_at"], postgresql_where=sa.text("state IN (1, 7)"))


def downgrade() -> None:
    op.drop_table("dispatch")
