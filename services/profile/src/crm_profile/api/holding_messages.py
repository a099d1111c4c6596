"""Holding proto <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, money_pb2

from crm.profile.v1 import holding_pb2
from crm_profile.holdings.model import Holding, HoldingFilter
from crm_profile.holdings.money import Money
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import from_date, to_date


def _date(value: date_pb2.Date, field: str, bad: list[FieldViolation]) -> date | None:
    try:
        return to_date(value)
    except ValueError:
        bad.append(FieldViolation(field, "is not a real calendar date"))
        return None


def _time(message: Message, field: str, bad: list[FieldViolation]) -> datetime | None:
    if not message.HasField(field):
        return None
    try:
        return getattr(message, field).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        bad.append(FieldViolation(f"holding.{field}", "is not a valid timestamp"))
        return None


def money_to_domain(value: money_pb2.Money) -> Money:
    return Money(value.currency_code, value.units, value.nanos)


def money_to_proto(value: Money) -> money_pb2.Money:
    return money_pb2.Money(currency_code=value.currency_code, units=value.units, nanos=value.nanos)


def to_domain(message: holding_pb2.Holding, *, customer_id: str, holding_id: str | None = None) -> Holding:
    """Domain holding from a request; INVALID_ARGUMENT for values that cannot even be read."""
    bad: list[FieldViolation] = []
    holding = Holding(
        customer_id=customer_id,
        holding_id=holding_id if holding_id is not None else message.holding_id,
        product_code=message.product_code,
        product_type=message.product_type,
        currency=message.currency,
        balance=money_to_domain(message.balance) if message.HasField("balance") else None,
        balance_time=_time(message, "balance_time", bad),
        open_date=_date(message.open_date, "holding.open_date", bad),
        maturity_date=_date(message.maturity_date, "holding.maturity_date", bad),
        status=message.status,
        close_date=_date(message.close_date, "holding.close_date", bad),
        source_system=message.source_system,
    )
    if bad:
        raise InvalidArgument(bad)
    return holding


def filter_to_domain(request: holding_pb2.ListHoldingsRequest) -> HoldingFilter:
    bad: list[FieldViolation] = []
    narrowing = HoldingFilter(
        product_types=tuple(request.product_types),
        statuses=tuple(request.statuses),
        maturity_from=_date(request.maturity_date_from, "maturity_date_from", bad),
        maturity_to=_date(request.maturity_date_to, "maturity_date_to", bad),
    )
    if bad:
        raise InvalidArgument(bad)
    return narrowing


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def to_proto(h: Holding) -> holding_pb2.Holding:
    message = holding_pb2.Holding(
        name=h.name, holding_id=h.holding_id, etag=h.etag, product_code=h.product_code,
        product_type=holding_pb2.ProductType.ValueType(h.product_type), currency=h.currency,
        status=holding_pb2.HoldingStatus.ValueType(h.status),
        source_system=h.source_system,
    )
    if h.balance is not None:
        message.balance.CopyFrom(money_to_proto(h.balance))
    if h.reporting_balance is not None:
        message.reporting_balance.CopyFrom(money_to_proto(h.reporting_balance))
    for field, day in (("open_date", h.open_date), ("maturity_date", h.maturity_date), ("close_date", h.close_date)):
        if day is not None:
            getattr(message, field).CopyFrom(from_date(day))
    for field, moment in (("balance_time", h.balance_time), ("create_time", h.created_at),
                          ("update_time", h.updated_at)):
        if moment is not None:
            getattr(message, field).CopyFrom(_stamp(moment))
    return message
