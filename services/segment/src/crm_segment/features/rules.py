"""Pure decisions of the read model: feed order, resource names, product categories, dates."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime

from crmkit.outbox import parse_cursor

# A position packs (transaction id, sequence) into one integer that sorts as the feed does: a
# sequence is a bigint, always below 10^19.
_SEQ_SPAN = 10**19

# Profile's resource types on its feed (the contract names them by their proto types).
CUSTOMER_TYPE = "crm.profile.v1.Customer"
FEATURES_TYPE = "crm.profile.v1.CustomerFeatures"
HOLDING_TYPE = "crm.profile.v1.Holding"
CONSENT_TYPE = "crm.profile.v1.ConsentRecord"
PREFERENCES_TYPE = "crm.profile.v1.ContactPreferences"
EVENT_TYPE = "crm.profile.v1.CustomerEvent"
FOLLOWED_TYPES = (CUSTOMER_TYPE, FEATURES_TYPE, HOLDING_TYPE, CONSENT_TYPE, PREFERENCES_TYPE, EVENT_TYPE)

_CUSTOMER_OF = re.compile(r"customers/([^/]+)(?:/.*)?")

# crm.profile.v1.ProductType -> the catalogue's product category.
PRODUCT_CATEGORIES = {1: "CURRENT_ACCOUNT", 2: "SAVINGS", 3: "TERM_DEPOSIT", 4: "WEALTH", 5: "FUND", 6: "BOND",
                      7: "INSURANCE", 8: "PRECIOUS_METAL", 9: "CREDIT_CARD", 10: "LOAN", 11: "MORTGAGE",
                      12: "LOAN"}
PAYROLL = "PAYROLL"
# crm.profile.v1.HoldingStatus values of an open holding (ACTIVE, DORMANT, FROZEN, MATURED).
OPEN_STATUSES = frozenset({1, 2, 3, 4})
# crm.profile.v1.CustomerState: only ACTIVE customers are in the model's population.
ACTIVE_STATE = 1
# crm.profile.v1.ConsentPurpose MARKETING, ConsentDecision OPT_IN.
MARKETING = 1
OPT_IN = 1
# crm.profile.v1.EventType TRANSACTION, and the TransactionKinds the bank initiates (SALARY,
# INTEREST, FEE): the other kinds are customer-initiated transactions, profile's definition too.
TRANSACTION_EVENT = 6
NOT_CUSTOMER_INITIATED_KINDS = frozenset({5, 10, 11})
# crm.profile.v1.ContactChannel -> the catalogue's channel names.
CHANNELS = {1: "SMS", 2: "EMAIL", 3: "PHONE_CALL", 4: "MOBILE_APP", 5: "WECHAT", 6: "POST"}


def position_key(cursor: str) -> int:
    """The feed position of an event's cursor as one integer in feed order."""
    position = parse_cursor(cursor)
    return position.xid * _SEQ_SPAN + position.seq


def customer_id_of(resource_name: str) -> str | None:
    """The customer a profile resource belongs to (`customers/{id}[/...]`); None for others."""
    matched = _CUSTOMER_OF.fullmatch(resource_name)
    return matched[1] if matched else None


def product_categories(product_types: Iterable[int], *, payroll_active: bool) -> list[str]:
    """The catalogue's categories of the open holdings, sorted; PAYROLL when payroll is active."""
    held = {PRODUCT_CATEGORIES[t] for t in product_types if t in PRODUCT_CATEGORIES}
    if payroll_active:
        held.add(PAYROLL)
    return sorted(held)


def next_maturity(maturities: Iterable[date | None], *, today: date) -> date | None:
    """The earliest maturity date on or after today among open holdings."""
    due = [d for d in maturities if d is not None and d >= today]
    return min(due) if due else None


def days_until(day: date | None, *, today: date) -> int | None:
    return (day - today).days if day is not None else None


def consented_channels(decisions: Iterable[tuple[int, bool, datetime | None]], *, now: datetime) -> list[str]:
    """Channels whose latest marketing decision is an opt-in still in force, sorted by name."""
    return sorted(CHANNELS[channel] for channel, opted_in, expire_at in decisions
                  if opted_in and channel in CHANNELS and (expire_at is None or expire_at > now))



def is_customer_transaction(event_type: int, kind: int) -> bool:
    """Whether an event is a customer-initiated transaction: what RFM and lifetime value count."""
    return event_type == TRANSACTION_EVENT and kind not in NOT_CUSTOMER_INITIATED_KINDS
