"""Profile's change events -> the read model's changes. Decoding only: no rules, no I/O.

An event of a type the model does not follow, or about no customer, decodes to None and is
skipped (the cursor still moves past it)."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from google.type import money_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, features_pb2, holding_pb2
from crm_risk.customers import rules
from crm_risk.customers.model import AgeChange, CustomerChange, HoldingChange, Stamp
from crmkit.outbox import feed_order
from crmkit.validation import to_date

ChangeEvent = change_event_pb2.ChangeEvent
DELETED = change_event_pb2.CHANGE_TYPE_DELETED


def decode(event: ChangeEvent, attributes: rules.AttributeNames, currency: str = "CNY"
           ) -> CustomerChange | AgeChange | HoldingChange | None:
    """`currency`: the reporting currency; amounts in any other are taken as unknown."""
    customer_id = rules.customer_id_of(event.resource_name)
    if customer_id is None or event.resource_type not in rules.FOLLOWED_TYPES:
        return None
    if event.resource_type == rules.EVENT_TYPE:  # not kept in the model (the alert triggers read them)
        return None
    stamp = Stamp(customer_id=customer_id, position=feed_order(event.cursor),
                  occurred_at=event.occurred_at.ToDatetime(tzinfo=UTC))
    if event.resource_type == "crm.profile.v1.CustomerFeatures":
        return _age(event, stamp, currency)
    if event.resource_type == rules.HOLDING_TYPE:
        return _holding(event, stamp, currency)
    return _customer(event, stamp, attributes)


def _amount(money: money_pb2.Money, currency: str) -> Decimal | None:
    if money.currency_code != currency:
        return None
    return Decimal(money.units) + Decimal(money.nanos).scaleb(-9)


def _holding(event: ChangeEvent, stamp: Stamp, currency: str) -> HoldingChange | None:
    holding_id = rules.holding_id_of(event.resource_name)
    if holding_id is None:
        return None
    if event.change_type == DELETED:
        return HoldingChange(stamp=stamp, holding_id=holding_id, removed=True)
    h = holding_pb2.Holding()
    if not event.payload.Unpack(h):
        raise ValueError(f"{event.resource_type} event carries a {event.payload.TypeName()} payload")
    return HoldingChange(
        stamp=stamp, holding_id=holding_id, product_code=h.product_code, product_type=h.product_type,
        status=h.status, open_date=to_date(h.open_date) if h.HasField("open_date") else None,
        close_date=to_date(h.close_date) if h.HasField("close_date") else None,
        maturity_date=to_date(h.maturity_date) if h.HasField("maturity_date") else None,
        reporting_balance=_amount(h.reporting_balance, currency) if h.HasField("reporting_balance") else None)


def _customer(event: ChangeEvent, stamp: Stamp, attributes: rules.AttributeNames) -> CustomerChange:
    if event.change_type == DELETED:
        return CustomerChange(stamp=stamp, removed=True)
    c = customer_pb2.Customer()
    if not event.payload.Unpack(c):
        raise ValueError(f"{event.resource_type} event carries a {event.payload.TypeName()} payload")
    expiry = c.attributes.get(attributes.assessment_expiry) if attributes.assessment_expiry else None
    flag = c.attributes.get(attributes.vulnerable) if attributes.vulnerable else None
    overdue = c.attributes.get(attributes.credit_overdue) if attributes.credit_overdue else None
    return CustomerChange(
        stamp=stamp, removed=c.state != rules.ACTIVE_STATE, risk_tolerance=c.risk_tolerance,
        kyc_status=c.kyc_status, birth_year=c.birth_date.year or None,
        relationship_manager_id=c.relationship_manager_id, branch_id=c.branch_id,
        assessment_expiry=to_date(expiry.date_value) if expiry is not None and expiry.HasField("date_value") else None,
        vulnerable=flag is not None and flag.HasField("bool_value") and flag.bool_value,
        credit_overdue=overdue is not None and overdue.HasField("bool_value") and overdue.bool_value,
        feature_values=_feature_values(c),
        onboarded_on=to_date(c.onboarded_on) if c.HasField("onboarded_on") else None,
        closed_on=to_date(c.closed_on) if c.HasField("closed_on") else None)


def _feature_values(c: customer_pb2.Customer) -> dict[str, str | float]:
    """The customer's scoring inputs: custom attributes by id, gender, region, birth year."""
    values: dict[str, str | float] = {}
    for key, value in c.attributes.items():
        kind = value.WhichOneof("value")
        if kind in ("int_value", "bool_value"):
            values[key] = float(getattr(value, kind))
        elif kind == "decimal_value":
            values[key] = value.decimal_value.value
        elif kind == "date_value":
            values[key] = to_date(value.date_value).isoformat()  # type: ignore[union-attr]
        elif kind is not None:
            values[key] = getattr(value, kind)
    if c.gender:
        values["gender"] = customer_pb2.Gender.Name(c.gender).removeprefix("GENDER_").capitalize()
    if c.address.region_code:
        values["region"] = c.address.region_code
    if c.birth_date.year:
        values["birth_year"] = float(c.birth_date.year)
    return values


def _age(event: ChangeEvent, stamp: Stamp, currency: str) -> AgeChange:
    if event.change_type == DELETED:
        return AgeChange(stamp=stamp, age_years=None, age_on=None)
    f = features_pb2.CustomerFeatures()
    if not event.payload.Unpack(f):
        raise ValueError(f"{event.resource_type} event carries a {event.payload.TypeName()} payload")
    lifecycle = f.lifecycle
    computed = f.compute_time.ToDatetime(tzinfo=UTC) if f.HasField("compute_time") else stamp.occurred_at
    return AgeChange(
        stamp=stamp, age_years=lifecycle.age_years if lifecycle.HasField("age_years") else None,
        age_on=computed.date(), computed_at=computed,
        aum=_amount(f.aum, currency) if f.HasField("aum") else None,
        average_aum_90d=_amount(f.average_aum_90d, currency) if f.HasField("average_aum_90d") else None,
        aum_change_90d=_amount(lifecycle.aum_change_90d, currency) if lifecycle.HasField("aum_change_90d") else None,
        product_count=f.product_count,
        last_activity_at=f.last_activity_time.ToDatetime(tzinfo=UTC) if f.HasField("last_activity_time") else None)
