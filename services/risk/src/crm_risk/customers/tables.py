"""The customer read model table: one row per customer, written only from the profile feed.

`birth_date` is kept because the age rules need a customer's age on the day of the check; it is
never logged and never leaves the service (results carry reason codes, not ages)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_risk.tables import metadata

customer = sa.Table(
    "customer",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    # crm.profile.v1.RiskTolerance / KycStatus numbers (risk mirrors them).
    sa.Column("risk_tolerance", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("assessment_expiry", sa.Date),
    sa.Column("kyc_status", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("birth_date", sa.Date),
    sa.Column("vulnerable", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_customer_manager", "relationship_manager_id", "customer_id"),
)
