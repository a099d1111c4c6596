"""What the alert triggers remember between profile events: the latest contact digests per
customer (keyed digests, never the details) and the log of changes the rules count."""

from __future__ import annotations

import sqlalchemy as sa

from crm_risk.customers.tables import Position
from crm_risk.tables import metadata

contact_digest = sa.Table(
    "contact_digest",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),
    sa.Column("digest", sa.Text, nullable=False),
)

contact_change = sa.Table(
    "contact_change",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),
    # The profile event that changed it (a replay of the event adds nothing).
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_contact_change_time", "customer_id", "changed_at"),
)

# What the transaction rules keep instead of the transactions themselves (profile's
# `CustomerEvent` transactions in the reporting currency):

transaction_baseline = sa.Table(
    "transaction_baseline",
    metadata,
    # A customer's running amount statistics per direction (Welford: count, mean, sum of squared
    # deviations), over every transaction of that direction risk applied.
    sa.Column("customer_id", sa.Text, primary_key=True),
    # crm.profile.v1.TransactionDirection number.
    sa.Column("direction", sa.SmallInteger, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("mean", sa.Float, nullable=False),
    sa.Column("m2", sa.Float, nullable=False),
    # Profile's feed position of the last transaction counted: an event at or before it is a
    # replay and changes nothing (the feed is in order per customer).
    sa.Column("position", Position, nullable=False),
)

outflow_bucket = sa.Table(
    "outflow_bucket",
    metadata,
    # Money out of a customer's holdings per hour (reporting currency); kept 90 days, the longest
    # window a rule may have.
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("amount", sa.Numeric(24, 4), nullable=False),
    # The part of `amount` that was transfers (whose account they went to is not known).
    sa.Column("transfer_amount", sa.Numeric(24, 4), nullable=False),
)

abnormal_transaction = sa.Table(
    "abnormal_transaction",
    metadata,
    # A transaction an abnormal-transactions rule found abnormal: the rule's count and evidence.
    sa.Column("alert_rule_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    # The profile event's resource name, `customers/{customer_id}/events/{event_id}`.
    sa.Column("event", sa.Text, primary_key=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("direction", sa.SmallInteger, nullable=False),
    sa.Column("amount", sa.Numeric(24, 4), nullable=False),
    sa.Column("z_score", sa.Float, nullable=False),
    sa.Index("ix_abnormal_transaction_time", "alert_rule_id", "customer_id", "occurred_at"),
)
