"""Audience builds: the operation table and the read models a build reads (segment membership,
marketing contactability, open complaints)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from crmkit.kit_schema import create_operation_table, drop_operation_table

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_operation_table()
    op.create_table(
        "segment_member",
        sa.Column("segment_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_segment_member_customer", "segment_member", ["customer_id"])
    op.create_table(
        "customer_contact",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("do_not_contact", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("consented_channels", pg.ARRAY(sa.SmallInteger), nullable=False, server_default="{}"),
        sa.Column("reachable_channels", pg.ARRAY(sa.SmallInteger), nullable=False, server_default="{}"),
        sa.Column("preferred_channel", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("time_zone", sa.Text, nullable=False, server_default=""),
        sa.Column("held_products", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "open_complaint",
        sa.Column("complaint_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_open_complaint_customer", "open_complaint", ["customer_id"])


def downgrade() -> None:
    op.drop_table("open_complaint")
    op.drop_table("customer_contact")
    op.drop_table("segment_member")
    drop_operation_table()
