"""The holding table. Amounts are BIGINT minor units of their currency (see `money`), never floats."""

from __future__ import annotations

import sqlalchemy as sa

from crm_profile.tables import metadata

holding = sa.Table(
    "holding",
    metadata,
    # A customer's holdings go with the customer record (DeleteCustomer); consumers of the
    # customer's DELETED change drop them too.
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("holding_id", sa.Text, primary_key=True),
    sa.Column("product_code", sa.Text, nullable=False),
    sa.Column("product_type", sa.SmallInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("balance_minor", sa.BigInteger, nullable=False),
    sa.Column("balance_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reporting_currency", sa.Text),
    sa.Column("reporting_balance_minor", sa.BigInteger),
    sa.Column("open_date", sa.Date, nullable=False),
    sa.Column("maturity_date", sa.Date),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("close_date", sa.Date),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # The rules check these too; the constraints keep any other writer (a repair script) honest.
    sa.CheckConstraint("balance_minor >= 0", name="balance_not_negative"),
    sa.CheckConstraint("maturity_date IS NULL OR maturity_date >= open_date", name="maturity_after_open"),
    sa.CheckConstraint("close_date IS NULL OR close_date >= open_date", name="close_after_open"),
    # Renewal campaigns list holdings maturing in a date range across all customers.
    sa.Index("ix_holding_maturity_date", "maturity_date", "customer_id", "holding_id",
             postgresql_where=sa.text("maturity_date IS NOT NULL")),
)
