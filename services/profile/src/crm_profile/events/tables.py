"""The event store: an append-only table partitioned by month of `occur_time`, and the ledger of
accepted event ids that makes ingest idempotent.

Why a separate id ledger: a unique index on a partitioned table must include the partition key,
so `customer_event` alone could only refuse a repeated `event_id` within the same `occur_time`.
The contract says a repeated id is a duplicate "whatever its other fields say", so ids are
claimed in `customer_event_id` (one global primary key) before their events are stored.

Ids compare byte-wise (`COLLATE "C"`): they are identifiers, not words to sort for people, and
byte comparison keeps the ledger's and the index's inserts cheap at ingest rates.

Amounts are BIGINT minor units of `currency` (see `holdings.money`), never floats. Detail
columns are NULL for event types without that detail.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

customer_event = sa.Table(
    "customer_event",
    metadata,
    sa.Column("customer_id", sa.Text(collation="C"), nullable=False),
    sa.Column("occur_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_id", sa.Text(collation="C"), nullable=False),
    sa.Column("event_type", sa.SmallInteger, nullable=False),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("ingest_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("branch_id", sa.Text),
    sa.Column("product_code", sa.Text),
    sa.Column("currency", sa.Text),
    sa.Column("amount_minor", sa.BigInteger),
    sa.Column("direction", sa.SmallInteger),
    sa.Column("transaction_kind", sa.SmallInteger),
    sa.Column("holding_id", sa.Text),
    sa.Column("balance_after_minor", sa.BigInteger),
    sa.Column("merchant_category_code", sa.Text),
    sa.Column("application_id", sa.Text),
    sa.Column("application_outcome", sa.SmallInteger),
    sa.Column("login_success", sa.Boolean),
    sa.Column("login_method", sa.Text),
    sa.Column("properties", pg.JSONB),
    # The customer the source named when the event was filed under the survivor of a merge.
    sa.Column("original_customer_id", sa.Text),
    # A customer's events newest first (ListCustomerEvents; ties on a time are sorted by id on
    # the fly). Not unique: the id ledger is what refuses a repeated id, and the narrower key
    # keeps the index small under random inserts.
    sa.Index("ix_customer_event_customer_time", "customer_id", sa.text("occur_time DESC")),
    postgresql_partition_by="RANGE (occur_time)",
)

customer_event_id = sa.Table(
    "customer_event_id",
    metadata,
    sa.Column("event_id", sa.Text(collation="C"), primary_key=True),
)
