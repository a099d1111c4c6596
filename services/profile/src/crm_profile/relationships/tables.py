"""Links between customers. Each relationship is two rows, the link and its mirror on the related
customer, pointing at each other through `mirror_id`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

customer_relationship = sa.Table(
    "customer_relationship",
    metadata,
    sa.Column("relationship_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False),
    sa.Column("related_customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("ownership_percent", sa.Numeric(7, 4)),
    sa.Column("guaranteed_holding", sa.Text, nullable=False, server_default=""),
    sa.Column("start_date", sa.Date),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("mirror_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("customer_id", "related_customer_id", "type", name="uq_customer_relationship_link"),
    # A customer has at most one spouse.
    sa.Index("uq_customer_relationship_spouse", "customer_id", unique=True, postgresql_where=sa.text("type = 1")),
    sa.Index("ix_customer_relationship_related", "related_customer_id"),
    sa.Index("ix_customer_relationship_order", "customer_id", "type", "related_customer_id"),
)
