"""What the reports read beside the customer row: profile's holdings, and the churn risk detected
while applying profile's feed (one row per customer, churn type and day)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.customers.tables import Position
from crm_risk.tables import metadata

# Amounts in the reporting currency (statistical inputs, never a ledger).
Amount = sa.Numeric(24, 4)

holding = sa.Table(
    "holding",
    metadata,
    # Profile's holding id (`customers/{customer_id}/holdings/{holding_id}`).
    sa.Column("holding_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("position", Position, nullable=False),
    # Deleted in profile: a tombstone an older event cannot undo, counted nowhere.
    sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("product_code", sa.Text, nullable=False, server_default=""),
    # crm.profile.v1.ProductType / HoldingStatus numbers.
    sa.Column("product_type", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("status", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("open_date", sa.Date),
    sa.Column("close_date", sa.Date),
    # Time deposits and other products with a term (large-outflows rules watching maturities).
    sa.Column("maturity_date", sa.Date),
    # The reporting-currency balance; null when profile gave none in the reporting currency.
    sa.Column("reporting_balance", Amount),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_holding_customer", "customer_id"),
    sa.Index("ix_holding_open_date", "open_date"),
    sa.Index("ix_holding_close_date", "close_date"),
)

churn_event = sa.Table(
    "churn_event",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    # crm.risk.v1.ChurnType number.
    sa.Column("churn_type", sa.SmallInteger, primary_key=True),
    sa.Column("detected_on", sa.Date, primary_key=True),
    # The customer's book when detected.
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    # Total assets 90 days before the features in hand at detection; null when unknown.
    sa.Column("assets_before", Amount),
    sa.Column("tenure_months", sa.Integer),
    # The last churn score before the churn (band 0 and no drivers: none).
    sa.Column("score_band", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("score_drivers", pg.JSONB, nullable=False, server_default="[]"),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_churn_event_detected", "detected_on"),
)

complaint = sa.Table(
    "complaint",
    metadata,
    # Feedback's complaints (crmkit.peer_payloads), one row each, kept when resolved or deleted
    # (open false) as the tombstone an older event cannot undo; `position` is feedback's feed's.
    sa.Column("complaint_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("position", Position, nullable=False),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_complaint_customer", "customer_id", "filed_at"),
)
