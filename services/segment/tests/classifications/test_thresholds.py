"""Threshold validation: every bad field named at once, as the API will spell it."""

from __future__ import annotations

import dataclasses

import pytest

from crm_segment.classifications import rules
from crm_segment.classifications.model import (
    ActivityThresholds,
    LifecycleThresholds,
    Thresholds,
    TierThresholds,
)
from crmkit.errors import InvalidArgument

TIERS = TierThresholds()


def violations(thresholds: Thresholds) -> dict[str, str]:
    try:
        rules.validate(thresholds).raise_if_any()
    except InvalidArgument as error:
        return {v.field: v.description for v in error.violations}
    return {}


def with_tier(key: str, **changes: object) -> Thresholds:
    definition = dataclasses.replace(getattr(TIERS, key), **changes)
    return Thresholds(tiers=dataclasses.replace(TIERS, **{key: definition}))


def with_service(key: str, **changes: object) -> Thresholds:
    service = dataclasses.replace(getattr(TIERS, key).service, **changes)
    return with_tier(key, service=service)


def test_the_defaults_are_valid() -> None:
    assert violations(Thresholds()) == {}


def test_tier_thresholds_must_be_strictly_ordered() -> None:
    assert violations(with_tier("vip", min_average_aum_minor=600_000_000)) == {
        "tiers.vip.min_average_aum": "must be below tiers.private.min_average_aum (600000000)"}
    assert violations(with_tier("mass_affluent", min_average_aum_minor=50_000_001)) == {
        "tiers.mass_affluent.min_average_aum": "must be below tiers.vip.min_average_aum (50000000)"}
    assert violations(with_tier("mass_affluent", min_average_aum_minor=49_999_999)) == {}


def test_every_violation_is_reported_at_once() -> None:
    thresholds = Thresholds(
        tiers=dataclasses.replace(
            TIERS,
            private=dataclasses.replace(TIERS.private, min_average_aum_minor=None),
            mass_affluent=dataclasses.replace(TIERS.mass_affluent, min_average_aum_minor=0),
            mass=dataclasses.replace(TIERS.mass, min_average_aum_minor=1, min_inflow_90d_minor=5,
                                     display_name=""),
        ),
        activity=ActivityThresholds(core_recency_days=100, core_window_days=90),
        lifecycle=LifecycleThresholds(decline_min_drop_percent=101, churn_max_aum_minor=-1),
    )
    assert violations(thresholds) == {
        "tiers.private.min_average_aum": "is required",
        "tiers.mass_affluent.min_average_aum": "must be positive",
        "tiers.mass.min_average_aum": "must be unset for mass",
        "tiers.mass.min_inflow_90d": "must be unset except for potential",
        "tiers.mass.display_name": "must be 1 to 50 characters",
        "activity.core_recency_days": "must be between 1 and activity.core_window_days (90)",
        "lifecycle.decline_min_drop_percent": "must be between 1 and 100",
        "lifecycle.churn_max_aum": "must not be negative",
    }


@pytest.mark.parametrize(("changes", "field", "rule"), [
    ({"complaint_response_hours": 0}, "complaint_response_hours", "must be between 1 and 336"),
    ({"complaint_response_hours": 337}, "complaint_response_hours", "must be between 1 and 336"),
    ({"max_marketing_contacts_per_week": 5, "max_marketing_contacts_per_month": 4},
     "max_marketing_contacts_per_week",
     "must be at most tiers.vip.service_standard.max_marketing_contacts_per_month (4)"),
    ({"max_marketing_contacts_per_month": 61}, "max_marketing_contacts_per_month", "must be between 0 and 60"),
    ({"min_contacts_per_year": 53}, "min_contacts_per_year", "must be between 0 and 52"),
    ({"care_programme": "x" * 51}, "care_programme", "must be 1 to 50 characters"),
    ({"care_programme": "VIP\u202ecare"}, "care_programme", "must not contain control characters"),
])
def test_service_standard_rules(changes: dict[str, object], field: str, rule: str) -> None:
    assert violations(with_service("vip", **changes)) == {f"tiers.vip.service_standard.{field}": rule}


@pytest.mark.parametrize(("hours", "valid"), [(1, True), (336, True)])
def test_response_hours_limits_are_inclusive(hours: int, valid: bool) -> None:
    assert (violations(with_service("mass", complaint_response_hours=hours)) == {}) is valid


def test_potential_criteria() -> None:
    assert violations(with_tier("potential", min_expected_lifetime_value_minor=0)) == {
        "tiers.potential.min_expected_lifetime_value": "must be positive"}
    assert violations(with_tier("potential", min_product_count=None)) == {
        "tiers.potential.min_product_count": "must be set exactly when tiers.potential.min_inflow_90d is"}
    assert violations(with_tier("potential", min_product_count=None, min_inflow_90d_minor=None)) == {}
    assert violations(with_tier("vip", min_expected_lifetime_value_minor=1)) == {
        "tiers.vip.min_expected_lifetime_value": "must be unset except for potential"}


@pytest.mark.parametrize(("activity", "field"), [
    (ActivityThresholds(active_window_days=0, core_window_days=0, core_recency_days=0), "activity.active_window_days"),
    (ActivityThresholds(core_window_days=181), "activity.core_window_days"),
    (ActivityThresholds(core_min_activities=0), "activity.core_min_activities"),
    (ActivityThresholds(core_min_products=-1), "activity.core_min_products"),
])
def test_activity_rules(activity: ActivityThresholds, field: str) -> None:
    assert field in violations(Thresholds(activity=activity))


@pytest.mark.parametrize(("lifecycle", "field"), [
    (LifecycleThresholds(acquisition_days=-1), "lifecycle.acquisition_days"),
    (LifecycleThresholds(trend_window_days=0), "lifecycle.trend_window_days"),
    (LifecycleThresholds(growth_min_percent=0), "lifecycle.growth_min_percent"),
    (LifecycleThresholds(decline_min_net_closures=0), "lifecycle.decline_min_net_closures"),
])
def test_lifecycle_rules(lifecycle: LifecycleThresholds, field: str) -> None:
    assert set(violations(Thresholds(lifecycle=lifecycle))) == {field}
