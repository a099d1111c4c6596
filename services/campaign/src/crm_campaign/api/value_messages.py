"""google.type / google.protobuf values <-> domain values, shared by the campaign and offer messages.

Readers collect what cannot even be read (an amount whose units and nanos disagree, a decimal
that is not a number) as field violations instead of failing on the first one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import decimal_pb2, interval_pb2, money_pb2

from crm_campaign.campaigns.model import Interval, Money
from crmkit.errors import FieldViolation
from crmkit.values import timestamp

NANOS = Decimal(1_000_000_000)


def read_money(message: money_pb2.Money, field: str, bad: list[FieldViolation]) -> Money | None:
    units, nanos = message.units, message.nanos
    if not -999_999_999 <= nanos <= 999_999_999 or (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        bad.append(FieldViolation(field, "is not an amount: nanos must be within ±999,999,999 and share the "
                                         "sign of units"))
        return None
    return Money(message.currency_code, Decimal(units) + Decimal(nanos) / NANOS)


def money_to_proto(money: Money) -> money_pb2.Money:
    units = int(money.amount)
    nanos = int((money.amount - units) * NANOS)
    return money_pb2.Money(currency_code=money.currency_code, units=units, nanos=nanos)


def read_decimal(message: decimal_pb2.Decimal, field: str, bad: list[FieldViolation]) -> Decimal:
    if not message.value:
        return Decimal(0)
    try:
        value = Decimal(message.value)
    except InvalidOperation:
        bad.append(FieldViolation(field, "is not a decimal number, e.g. 2.5"))
        return Decimal(0)
    return value


def decimal_to_proto(value: Decimal) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=format(value.normalize(), "f"))


def read_interval(message: interval_pb2.Interval) -> Interval:
    return Interval(
        start_time=message.start_time.ToDatetime(tzinfo=UTC) if message.HasField("start_time") else None,
        end_time=message.end_time.ToDatetime(tzinfo=UTC) if message.HasField("end_time") else None,
    )


def interval_to_proto(interval: Interval) -> interval_pb2.Interval:
    message = interval_pb2.Interval()
    if interval.start_time is not None:
        message.start_time.CopyFrom(timestamp(interval.start_time))
    if interval.end_time is not None:
        message.end_time.CopyFrom(timestamp(interval.end_time))
    return message


def read_timestamp(message: Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def read_duration(message: Duration) -> timedelta:
    return message.ToTimedelta()

