"""CustomerFeatures proto <- domain model, and the recomputation's operation messages. Nothing
else: no rules, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.type import money_pb2

from crm.profile.v1 import features_pb2
from crm_profile.features.model import CustomerFeatures, RecomputeOutcome
from crm_profile.holdings import money
from crmkit.validation import from_date
from crmkit.values import set_timestamps


def _money(currency: str, minor: int) -> money_pb2.Money:
    value = money.from_minor(currency, minor)
    return money_pb2.Money(currency_code=value.currency_code, units=value.units, nanos=value.nanos)


def to_proto(features: CustomerFeatures) -> features_pb2.CustomerFeatures:
    """The message GetCustomerFeatures returns and the change feed publishes."""
    currency = features.reporting_currency
    rfm = features_pb2.RfmInputs(window_days=features.rfm_window_days, frequency=features.frequency,
                                 monetary=_money(currency, features.monetary_minor))
    if features.recency_days is not None:
        rfm.recency_days = features.recency_days
    activity = features_pb2.ActivityInputs(
        login_count_30d=features.login_count_30d, visit_count_30d=features.visit_count_30d,
        transaction_count_30d=features.transaction_count_30d, transaction_count_90d=features.transaction_count_90d,
        active_channel_count_90d=features.active_channel_count_90d)
    if features.days_since_last_activity is not None:
        activity.days_since_last_activity = features.days_since_last_activity
    lifecycle = features_pb2.LifecycleInputs(
        holdings_opened_90d=features.holdings_opened_90d, holdings_closed_90d=features.holdings_closed_90d,
        aum_change_90d=_money(currency, features.aum_change_90d_minor), payroll_active=features.payroll_active,
        closed_on=from_date(features.closed_on))
    if features.age_years is not None:
        lifecycle.age_years = features.age_years
    message = features_pb2.CustomerFeatures(
        name=features.name, rfm=rfm, aum=_money(currency, features.aum_minor),
        average_aum_90d=_money(currency, features.average_aum_90d_minor), product_count=features.product_count,
        product_type_count=features.product_type_count, tenure_days=features.tenure_days, activity=activity,
        next_maturing_holding=features.next_maturing_holding, lifecycle=lifecycle)
    if features.days_to_next_maturity is not None:
        message.days_to_next_maturity = features.days_to_next_maturity
    set_timestamps(message, compute_time=features.computed_at, last_activity_time=features.last_activity_at)
    return message


def describe(customers: Sequence[str], changed_since: datetime | None) -> features_pb2.RecomputeFeaturesRequest:
    """Operation.metadata of a recomputation: what it covers (the request without its key)."""
    request = features_pb2.RecomputeFeaturesRequest(customers=list(customers))
    set_timestamps(request, changed_since=changed_since)
    return request


def result(outcome: RecomputeOutcome) -> features_pb2.RecomputeFeaturesResult:
    return features_pb2.RecomputeFeaturesResult(customer_count=outcome.customer_count,
                                                changed_count=outcome.changed_count)
