"""The attribute catalogue and the customers' attribute values.

A value is stored in the typed column of its attribute's type, so validity, completeness and
segment rules are plain SQL over indexed columns; values of encrypted data classes are stored
only sealed (`value_sealed`, AES-GCM through the vault) and their typed columns stay NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

attribute_definition = sa.Table(
    "attribute_definition",
    metadata,
    sa.Column("attribute_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("value_type", sa.SmallInteger, nullable=False),
    # AttributeValidation in a JSON form of the domain's Validation (see repository.py).
    sa.Column("validation", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("data_class", sa.SmallInteger, nullable=False),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("completeness_expected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("max_age_days", sa.Integer),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

customer_attribute = sa.Table(
    "customer_attribute",
    metadata,
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("attribute_id", sa.Text, sa.ForeignKey("attribute_definition.attribute_id"), primary_key=True),
    sa.Column("value_text", sa.Text),  # STRING and ENUM
    sa.Column("value_number", sa.Numeric),  # INT and DECIMAL, exact
    sa.Column("value_bool", sa.Boolean),
    sa.Column("value_date", sa.Date),
    sa.Column("value_sealed", sa.LargeBinary),  # encrypted classes: the canonical text, sealed
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # Per-attribute scans (quality report, in-use checks, forced delete) read this index only.
    sa.Index("ix_customer_attribute_attribute_id", "attribute_id", "customer_id"),
)
