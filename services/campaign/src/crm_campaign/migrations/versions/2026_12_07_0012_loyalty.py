"""Loyalty points (a balance row per customer, its append-only transactions, the reward catalogue and
redemptions) and renewal tracking (holdings and renewals from profile's feed; the managers are the
books' `customer_manager`, 0011)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loyalty_account",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lifetime_earned", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lifetime_redeemed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
    )
    op.create_table(
        "loyalty_transaction",
        sa.Column("transaction_id", sa.Text, primary_key=True),
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
        sa.Column("reverses_transaction_id", sa.Text, sa.ForeignKey("loyalty_transaction.transaction_id"),
                  unique=True),
        sa.CheckConstraint("points <> 0", name="points_not_zero"),
        sa.CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
    )
    op.create_index("ix_loyalty_transaction_customer_seq", "loyalty_transaction", ["customer_id", "seq"])
    op.create_table(
        "reward",
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
    )
    op.create_index("ix_reward_display_name", "reward", ["display_name", "reward_id"])
    op.create_table(
        "redemption",
        sa.Column("redemption_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("reward_id", sa.Text, sa.ForeignKey("reward.reward_id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("voucher_code", sa.Text, nullable=False, unique=True),
        sa.Column("transaction_id", sa.Text, sa.ForeignKey("loyalty_transaction.transaction_id"),
                  nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "renewal_holding",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("holding_id", sa.Text, primary_key=True),
        sa.Column("product_code", sa.Text, nullable=False),
        sa.Column("product_type", sa.SmallInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("balance", sa.Numeric(24, 9), nullable=False),
        sa.Column("reporting_balance", sa.Numeric(24, 9), nullable=False),
        sa.Column("open_date", sa.Date, nullable=False),
        sa.Column("maturity_date", sa.Date),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("position", sa.Numeric(40, 0), nullable=False),
    )
    op.create_index("ix_renewal_holding_customer_open", "renewal_holding", ["customer_id", "open_date"])
    op.create_table(
        "renewal",
        sa.Column("renewal_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("holding_id", sa.Text, nullable=False),
        sa.Column("product_code", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("maturity_date", sa.Date, nullable=False),
        sa.Column("maturing_amount", sa.Numeric(24, 9), nullable=False),
        sa.Column("maturing_reporting_amount", sa.Numeric(24, 9), nullable=False),
        sa.Column("rolled_over_amount", sa.Numeric(24, 9)),
        sa.Column("rolled_over_reporting_amount", sa.Numeric(24, 9)),
        sa.Column("rolled_over_on", sa.Date),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("customer_id", "holding_id", "maturity_date", name="uq_renewal_holding_maturity"),
    )
    op.create_index("ix_renewal_maturity", "renewal", ["maturity_date", "renewal_id"])


def downgrade() -> None:
    op.drop_table("renewal")
    op.drop_table("renewal_holding")
    op.drop_table("redemption")
    op.drop_table("reward")
    op.drop_table("loyalty_transaction")
    op.drop_table("loyalty_account")
