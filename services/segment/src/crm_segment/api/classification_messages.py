"""Classification protos <-> domain values. Nothing else: no rules, no I/O.

Money is the reporting currency's minor units in the domain; a request's amount in another
currency or with a fraction of a minor unit is named as a bad field here.
"""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from google.type import money_pb2

from crm.segment.v1 import classification_pb2 as cpb
from crm_segment.classifications.model import (
    MINOR_PER_UNIT,
    REPORTING_CURRENCY,
    TIER_RANK,
    TIER_SLUGS,
    ActivityThresholds,
    Classification,
    LifecycleThresholds,
    ServiceStandard,
    StoredThresholds,
    StoredTier,
    Thresholds,
    TierDefinition,
)
from crmkit.resources import ResourceName
from crmkit.validation import Violations, set_date
from crmkit.values import set_timestamps

TIER_NAME = ResourceName("valueTiers/{tier}", id_pattern="|".join(TIER_SLUGS.values()))
TIER_OF_SLUG = {slug: tier for tier, slug in TIER_SLUGS.items()}
THRESHOLDS_NAME = ResourceName("classificationThresholds")
_NANOS_PER_MINOR = 1_000_000_000 // MINOR_PER_UNIT
DEFAULT_RESPONSE_HOURS = 48


def money(minor: int) -> money_pb2.Money:
    units, rest = divmod(abs(minor), MINOR_PER_UNIT)
    sign = -1 if minor < 0 else 1
    return money_pb2.Money(currency_code=REPORTING_CURRENCY, units=sign * units, nanos=sign * rest * _NANOS_PER_MINOR)


def minor_of(value: money_pb2.Money, field: str, v: Violations, *, present: bool) -> int | None:
    """An amount of the reporting currency in minor units; None when the field is unset."""
    if not present:
        return None
    if not v.check(value.currency_code == REPORTING_CURRENCY, f"{field}.currency_code",
                   f"must be {REPORTING_CURRENCY}, the reporting currency"):
        return None
    if not v.check(value.nanos % _NANOS_PER_MINOR == 0 and (value.units >= 0) == (value.nanos >= 0), field,
                   f"must be whole minor units of {REPORTING_CURRENCY}, units and nanos of one sign"):
        return None
    return value.units * MINOR_PER_UNIT + value.nanos // _NANOS_PER_MINOR


def service_to_proto(service: ServiceStandard) -> cpb.ServiceStandard:
    return cpb.ServiceStandard(
        dedicated_relationship_manager=service.dedicated_relationship_manager,
        max_customers_per_manager=service.max_customers_per_manager,
        min_contacts_per_year=service.min_contacts_per_year, priority_service=service.priority_service,
        max_response_time=Duration(seconds=service.complaint_response_hours * 3600), benefits=service.benefits,
        max_marketing_contacts_per_week=service.max_marketing_contacts_per_week,
        max_marketing_contacts_per_month=service.max_marketing_contacts_per_month,
        care_programme=service.care_programme)


def tier_to_proto(stored: StoredTier) -> cpb.ValueTierDefinition:
    d = stored.definition
    message = cpb.ValueTierDefinition(
        name=stored.name, tier=cpb.ValueTier.ValueType(stored.tier), etag=stored.etag, display_name=d.display_name,
        rank=TIER_RANK[stored.tier], downgrade_grace_months=d.downgrade_grace_months,
        service_standard=service_to_proto(d.service), customer_count=stored.customer_count, updater=stored.updater,
        min_product_count=d.min_product_count or 0)
    for field, minor in (("min_average_aum", d.min_average_aum_minor),
                         ("min_expected_lifetime_value", d.min_expected_lifetime_value_minor),
                         ("min_inflow_90d", d.min_inflow_90d_minor)):
        if minor is not None:
            getattr(message, field).CopyFrom(money(minor))
    set_timestamps(message, update_time=stored.updated_at)
    return message


def tier_to_domain(message: cpb.ValueTierDefinition, v: Violations) -> TierDefinition:
    """Every field of the request's definition (the service takes those of the mask)."""
    at = "value_tier."
    s = message.service_standard
    hours = DEFAULT_RESPONSE_HOURS
    if s.HasField("max_response_time"):
        seconds = s.max_response_time.ToTimedelta() / timedelta(seconds=1)
        if v.check(seconds % 3600 == 0, f"{at}service_standard.max_response_time", "must be whole hours"):
            hours = int(seconds // 3600)
    service = ServiceStandard(
        dedicated_relationship_manager=s.dedicated_relationship_manager, priority_service=s.priority_service,
        complaint_response_hours=hours, max_marketing_contacts_per_week=s.max_marketing_contacts_per_week,
        max_marketing_contacts_per_month=s.max_marketing_contacts_per_month, care_programme=s.care_programme,
        min_contacts_per_year=s.min_contacts_per_year, max_customers_per_manager=s.max_customers_per_manager,
        benefits=tuple(s.benefits))
    return TierDefinition(
        display_name=message.display_name, service=service,
        min_average_aum_minor=minor_of(message.min_average_aum, f"{at}min_average_aum", v,
                                       present=message.HasField("min_average_aum")),
        min_expected_lifetime_value_minor=minor_of(
            message.min_expected_lifetime_value, f"{at}min_expected_lifetime_value", v,
            present=message.HasField("min_expected_lifetime_value")),
        min_inflow_90d_minor=minor_of(message.min_inflow_90d, f"{at}min_inflow_90d", v,
                                      present=message.HasField("min_inflow_90d")),
        min_product_count=message.min_product_count, downgrade_grace_months=message.downgrade_grace_months)


def thresholds_to_proto(stored: StoredThresholds) -> cpb.ClassificationThresholds:
    a, lc = stored.activity, stored.lifecycle
    message = cpb.ClassificationThresholds(
        name=stored.name, etag=stored.etag, updater=stored.updater,
        activity=cpb.ActivityLayerThresholds(
            core_recency_days=a.core_recency_days, core_window_days=a.core_window_days,
            core_min_activities=a.core_min_activities, core_min_products=a.core_min_products,
            active_window_days=a.active_window_days),
        lifecycle=cpb.LifecycleStageThresholds(
            acquisition_days=lc.acquisition_days, trend_window_days=lc.trend_window_days,
            growth_min_percent=lc.growth_min_percent, decline_min_drop_percent=lc.decline_min_drop_percent,
            decline_min_net_closures=lc.decline_min_net_closures, churn_max_aum=money(lc.churn_max_aum_minor)))
    set_timestamps(message, update_time=stored.updated_at)
    return message


def thresholds_to_domain(message: cpb.ClassificationThresholds, paths: list[str], v: Violations) -> Thresholds:
    """Every field of the request's thresholds (the service takes those of the mask); the amount
    must be present when the mask names it, as an unset Money is not zero."""
    a, lc = message.activity, message.lifecycle
    churn = minor_of(lc.churn_max_aum, "thresholds.lifecycle.churn_max_aum", v, present=lc.HasField("churn_max_aum"))
    if not lc.HasField("churn_max_aum") and ({"lifecycle", "lifecycle.churn_max_aum"} & set(paths)):
        v.add("thresholds.lifecycle.churn_max_aum", "is required when the update mask names it")
    return Thresholds(
        activity=ActivityThresholds(
            core_recency_days=a.core_recency_days, core_min_activities=a.core_min_activities,
            core_min_products=a.core_min_products, active_window_days=a.active_window_days),
        lifecycle=LifecycleThresholds(
            acquisition_days=lc.acquisition_days, growth_min_percent=lc.growth_min_percent,
            decline_min_drop_percent=lc.decline_min_drop_percent,
            decline_min_net_closures=lc.decline_min_net_closures, churn_max_aum_minor=churn or 0))


def classification_to_proto(c: Classification, service: ServiceStandard | None) -> cpb.CustomerClassification:
    message = cpb.CustomerClassification(
        customer=f"customers/{c.customer_id}", value_tier=cpb.ValueTier.ValueType(c.tier.tier),
        previous_value_tier=cpb.ValueTier.ValueType(c.tier.previous), qualifying_aum=money(c.qualifying_aum_minor),
        activity_layer=cpb.ActivityLayer.ValueType(c.activity_layer),
        lifecycle_stage=cpb.LifecycleStage.ValueType(c.lifecycle_stage))
    for field, day in (("value_tier_since", c.tier.since), ("downgrade_due_on", c.tier.downgrade_due_on),
                       ("activity_layer_since", c.activity_layer_since),
                       ("lifecycle_stage_since", c.lifecycle_stage_since)):
        if day is not None:
            set_date(getattr(message, field), day)
    if c.rfm is not None and c.classified_at is not None:
        rfm = message.rfm
        rfm.recency_days, rfm.frequency = c.rfm_recency_days or 0, c.rfm_frequency
        rfm.monetary.CopyFrom(money(c.rfm_monetary_minor))
        rfm.recency_score, rfm.frequency_score, rfm.monetary_score = c.rfm.recency, c.rfm.frequency, c.rfm.monetary
        rfm.cell, rfm.segment = c.rfm.cell, cpb.RfmSegment.ValueType(c.rfm.segment)
        if c.rfm_recency_days is not None:
            set_date(rfm.last_transaction_date, c.classified_at.date() - timedelta(days=c.rfm_recency_days))
        if c.rfm_window_days:
            set_timestamps(rfm.window, start_time=c.classified_at - timedelta(days=c.rfm_window_days),
                           end_time=c.classified_at)
    if service is not None:
        message.service_standard.CopyFrom(service_to_proto(service))
    if c.expected_lifetime_value_minor is not None:
        message.expected_lifetime_value.CopyFrom(money(c.expected_lifetime_value_minor))
    set_timestamps(message, classify_time=c.classified_at, features_as_of=c.features_as_of)
    return message
