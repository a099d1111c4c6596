"""The calendar facts trigger rules need about a customer, read from profile's feed, and the pure
date rules of the calendar scan (anniversaries within a lead time, dormancy). No I/O here.

Only what the conditions need is kept: the relationship's anniversary as month-day and year
(from `Customer.onboarded_on`) and the time of the customer's last own activity (a LOGIN, or a
TRANSACTION the customer initiated: not salary, interest, fees or other bank-initiated kinds).
Birthdays are not kept: profile's feed carries `birth_date` masked to the year alone.
"""

from __future__ import annotations

import calendar as gregorian
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, event_pb2
from crmkit.feed_consumer import ChangeEvent

CUSTOMER_TYPE = "crm.profile.v1.Customer"
CUSTOMER_EVENT_TYPE = "crm.profile.v1.CustomerEvent"
# Transactions a customer makes themselves (activity); salary, interest and fees are not.
CUSTOMER_INITIATED = frozenset({
    event_pb2.TRANSACTION_KIND_TRANSFER, event_pb2.TRANSACTION_KIND_CARD_PAYMENT,
    event_pb2.TRANSACTION_KIND_CASH_DEPOSIT, event_pb2.TRANSACTION_KIND_CASH_WITHDRAWAL,
    event_pb2.TRANSACTION_KIND_BILL_PAYMENT, event_pb2.TRANSACTION_KIND_INVESTMENT_PURCHASE,
    event_pb2.TRANSACTION_KIND_INVESTMENT_REDEMPTION, event_pb2.TRANSACTION_KIND_LOAN_REPAYMENT})
LEAP_DAY = 229


@dataclass(frozen=True)
class CalendarFact:
    customer_id: str
    # month * 100 + day and year of the relationship's start; 0 when this fact does not say.
    onboarded_month_day: int = 0
    onboarded_year: int = 0
    active_at: datetime | None = None


def fact_of(event: ChangeEvent) -> CalendarFact | None:
    """What a profile feed event says about a customer's calendar, or None."""
    if event.resource_type == CUSTOMER_TYPE and event.change_type in (change_event_pb2.CHANGE_TYPE_CREATED,
                                                                      change_event_pb2.CHANGE_TYPE_UPDATED):
        customer = customer_pb2.Customer()
        if not event.payload.Unpack(customer) or not customer.HasField("onboarded_on"):
            return None
        day = customer.onboarded_on
        if not (day.year and day.month and day.day) or not event.resource_name.startswith("customers/"):
            return None
        return CalendarFact(event.resource_name.removeprefix("customers/"),
                            onboarded_month_day=day.month * 100 + day.day, onboarded_year=day.year)
    if event.resource_type == CUSTOMER_EVENT_TYPE and event.change_type == change_event_pb2.CHANGE_TYPE_EVENT:
        message = event_pb2.CustomerEvent()
        if not event.payload.Unpack(message) or not message.customer.startswith("customers/"):
            return None
        own = message.event_type == event_pb2.EVENT_TYPE_LOGIN or (
            message.event_type == event_pb2.EVENT_TYPE_TRANSACTION and message.HasField("transaction")
            and message.transaction.kind in CUSTOMER_INITIATED)
        if not own or not message.HasField("occur_time"):
            return None
        return CalendarFact(message.customer.removeprefix("customers/"),
                            active_at=message.occur_time.ToDatetime(tzinfo=UTC))
    return None


def window(today: date, lead_days: int) -> list[date]:
    """The days from today to `lead_days` ahead (an anniversary on one of them is due)."""
    return [today + timedelta(days=n) for n in range(lead_days + 1)]


def month_day(day: date) -> int:
    return day.month * 100 + day.day


def month_days(days: Iterable[date]) -> list[int]:
    """The month-days that fall on these days; a 29 February start falls on 28 February in
    years without one."""
    found: set[int] = set()
    for day in days:
        found.add(month_day(day))
        if day.month == 2 and day.day == 28 and not gregorian.isleap(day.year):
            found.add(LEAP_DAY)
    return sorted(found)


def anniversary_in(days: Iterable[date], onboarded_month_day: int) -> date | None:
    """The first of `days` on which a relationship begun on that month-day has its anniversary."""
    for day in days:
        if month_day(day) == onboarded_month_day or (
                onboarded_month_day == LEAP_DAY and (day.month, day.day) == (2, 28) and not gregorian.isleap(day.year)):
            return day
    return None
