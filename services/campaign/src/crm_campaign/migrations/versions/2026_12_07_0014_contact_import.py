"""Imported contact history, the propensity model registry and the customer-feature read model

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-07 17:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imported_contact",
        sa.Column("imported_contact_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("source_system", sa.Text, nullable=False),
        sa.Column("contact_key", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("offer_type", sa.Text, nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("contacted_at", sa.DateTime(timezone=True)),
        sa.Column("contact_month", sa.SmallInteger),
        sa.Column("contact_day_of_week", sa.SmallInteger),
        sa.Column("attempt_number", sa.Integer),
        sa.Column("outcome", sa.SmallInteger, nullable=False),
        sa.Column("previous_outcome", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("days_since_previous_contact", sa.Integer),
        sa.Column("previous_contact_count", sa.Integer),
        sa.Column("context", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("operation_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("source_system", "customer_id", "offer_type", "contact_key",
                            name="uq_imported_contact_source_contact"),
    )
    op.create_index("ix_imported_contact_offer_type", "imported_contact", ["offer_type", "imported_contact_id"])
    op.create_table(
        "propensity_model",
        sa.Column("offer_type", sa.Text, primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("algorithm", sa.Text, nullable=False),
        sa.Column("features", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("metrics", pg.JSONB, nullable=False),
        sa.Column("data_fingerprint", sa.Text, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=False),
        sa.Column("creator", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "customer_feature",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("features", pg.JSONB, nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("customer_feature")
    op.drop_table("propensity_model")
    op.drop_index("ix_imported_contact_offer_type", table_name="imported_contact")
    op.drop_table("imported_contact")
