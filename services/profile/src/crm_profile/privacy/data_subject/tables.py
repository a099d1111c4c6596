"""The evidence of erasures."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

# The bank's evidence that it honoured an erasure request (EraseCustomer returns it again). No
# foreign key: the evidence outlives the tombstone. Holds class counts, never personal values.
customer_erasure = sa.Table(
    "customer_erasure",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("erased_by", sa.Text, nullable=False),
    sa.Column("case_reference", sa.Text, nullable=False),
    # [{"data_class": 2, "outcome": 1, "record_count": 5, "restricted_until": null}, ...]
    sa.Column("report", pg.JSONB, nullable=False),
)
