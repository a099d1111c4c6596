"""Renewal decisions, free of gRPC and SQL: which holdings mature into a renewal, which take
reinvested money, the window, the grace period and the outcome thresholds."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

from crm.profile.v1 import holding_pb2

# A renewal is listed from this long before its maturity date (the renewal window).
WINDOW = timedelta(days=60)
# It is decided this long after maturity (the grace period) unless the holding rolled over first.
GRACE = timedelta(days=7)
# At least this share of the matured amount staying with the bank is RENEWED; less but some is
# PARTIALLY_RENEWED; none is LAPSED.
RENEWED_SHARE = Decimal("0.9")

P = holding_pb2
# Term products whose maturity is tracked.
MATURING_TYPES = frozenset({P.PRODUCT_TYPE_TERM_DEPOSIT, P.PRODUCT_TYPE_WEALTH_MANAGEMENT, P.PRODUCT_TYPE_BOND})
# Where matured money counts as renewed or reinvested (not current or savings accounts: money
# sitting idle there has lapsed, as the contract says).
PLACEMENT_TYPES = frozenset({
    P.PRODUCT_TYPE_TERM_DEPOSIT, P.PRODUCT_TYPE_WEALTH_MANAGEMENT, P.PRODUCT_TYPE_FUND, P.PRODUCT_TYPE_BOND,
    P.PRODUCT_TYPE_INSURANCE, P.PRODUCT_TYPE_PRECIOUS_METAL})

_NAMESPACE = uuid.UUID("5f0c3a52-8d1e-4b7a-9a55-2b7c1e0d4f61")


def renewal_id(customer_id: str, holding_id: str, maturity_date: date) -> str:
    """One id per maturity of a holding, the same on every replay of the feed."""
    return uuid.uuid5(_NAMESPACE, f"{customer_id}/{holding_id}/{maturity_date.isoformat()}").hex


def is_tracked(product_type: int, maturity_date: date | None, status: int) -> bool:
    return product_type in MATURING_TYPES and maturity_date is not None and status != P.HOLDING_STATUS_CLOSED


def retention_rate(*, maturing: Decimal, renewed: Decimal) -> float:
    """Renewed over maturing amount of decided renewals, 0 to 1; 0 when none is decided."""
    return float(min(renewed / maturing, Decimal(1))) if maturing > 0 else 0.0
