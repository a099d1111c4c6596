"""Field change history and field confirmations.

`field_change` is append-only and outlives the customer row (a deleted customer's history stays
for audit; `EraseCustomer` removes the personal values in it). Personal values are stored only
sealed (`*_sealed`), never in the `*_text` columns. A customer's creation is one row whose `field`
is empty and whose `new_text` lists the paths it set, without their values (history.rules).

`field_confirmation` holds, per customer and field that has a value, when it was last changed
or confirmed after the customer's creation (which confirms every field it sets, without rows):
the stale-data prompt reads it through its (field, confirmed_at) index, and `customer.created_at`
for fields that have none.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_profile.tables import metadata

field_change = sa.Table(
    "field_change",
    metadata,
    sa.Column("field_change_id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("old_text", sa.Text),
    sa.Column("new_text", sa.Text),
    sa.Column("old_sealed", sa.LargeBinary),
    sa.Column("new_sealed", sa.LargeBinary),
    sa.Column("personal", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("source", sa.SmallInteger, nullable=False),
    sa.Column("source_system", sa.Text, nullable=False, server_default=""),
    sa.Column("origin", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_field_change_customer_id", "customer_id", "field_change_id"),
)

field_confirmation = sa.Table(
    "field_confirmation",
    metadata,
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_field_confirmation_field", "field", "confirmed_at", "customer_id"),
)
