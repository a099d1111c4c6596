"""Loyalty tables: a balance row per customer and its append-only transactions (moved together in
one transaction, so the balance always equals the sum of the movements), the reward catalogue and
redemptions."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.tables import metadata

loyalty_account = sa.Table(
    "loyalty_account",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lifetime_earned", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lifetime_redeemed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # The last line of defence: the conditional update refuses first, with a clear error.
    sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
)

loyalty_transaction = sa.Table(
    "loyalty_transaction",
    metadata,
    sa.Column("transaction_id", sa.Text, primary_key=True),
    # Order of the movements; within one account it is also the order of the balance (the
    # account's row lock is held from the balance update to the commit).
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
    sa.Column("customer_id", sa.Text, sa.ForeignKey("loyalty_account.customer_id"), nullable=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("expire_on", sa.Date),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # For a reversal, the transaction it takes back: unique, so no transaction is reversed twice.
    sa.Column("reverses_transaction_id", sa.Text, sa.ForeignKey("loyalty_transaction.transaction_id"),
              unique=True),
    sa.CheckConstraint("points <> 0", name="points_not_zero"),
    sa.CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
    sa.Index("ix_loyalty_transaction_customer_seq", "customer_id", "seq"),
)

reward = sa.Table(
    "reward",
    metadata,
    sa.Column("reward_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("points_cost", sa.BigInteger, nullable=False),
    sa.Column("limited_quantity", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("remaining_quantity", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("available_start_at", sa.DateTime(timezone=True)),
    sa.Column("available_end_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("points_cost > 0", name="points_cost_positive"),
    sa.CheckConstraint("remaining_quantity >= 0", name="remaining_quantity_not_negative"),
    sa.Index("ix_reward_display_name", "display_name", "reward_id"),
)

redemption = sa.Table(
    "redemption",
    metadata,
    sa.Column("redemption_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("reward_id", sa.Text, sa.ForeignKey("reward.reward_id"), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("voucher_code", sa.Text, nullable=False, unique=True),
    sa.Column("transaction_id", sa.Text, sa.ForeignKey("loyalty_transaction.transaction_id"), nullable=False),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
