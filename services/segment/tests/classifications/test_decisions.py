"""Value tier, activity layer and lifecycle stage: each threshold exactly at, just below and just
above, and the enums against the contract. No database."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm.segment.v1 import classification_pb2
from crm_segment.classifications import rules
from crm_segment.classifications.model import (
    TIER_RANK,
    ActivityLayer,
    ActivitySignals,
    ActivityThresholds,
    LifecycleSignals,
    LifecycleStage,
    LifecycleThresholds,
    Thresholds,
    TierSignals,
    TierThresholds,
    ValueTier,
)
from crmkit.testing import assert_enum_mirrors

TIERS = TierThresholds()
CNY = 100  # minor units per yuan


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (ValueTier, classification_pb2.ValueTier, "VALUE_TIER_"),
    (ActivityLayer, classification_pb2.ActivityLayer, "ACTIVITY_LAYER_"),
    (LifecycleStage, classification_pb2.LifecycleStage, "LIFECYCLE_STAGE_"),
])
def test_enums_mirror_the_contract(domain, proto, prefix) -> None:
    assert_enum_mirrors(domain, proto, prefix=prefix)


# --- value tiers --------------------------------------------------------------------------------

@pytest.mark.parametrize(("aum_yuan", "tier"), [
    (6_000_000, ValueTier.PRIVATE), (6_000_000.01, ValueTier.PRIVATE), (5_999_999.99, ValueTier.VIP),
    (500_000, ValueTier.VIP), (500_000.01, ValueTier.VIP), (499_999.99, ValueTier.MASS_AFFLUENT),
    (50_000, ValueTier.MASS_AFFLUENT), (50_000.01, ValueTier.MASS_AFFLUENT), (49_999.99, ValueTier.MASS),
    (0, ValueTier.MASS),
])
def test_tier_by_average_aum(aum_yuan: float, tier: ValueTier) -> None:
    assert rules.value_tier(TierSignals(average_aum_minor=round(aum_yuan * CNY)), TIERS) is tier


@pytest.mark.parametrize(("elv_minor", "tier"), [
    (1_000_000, ValueTier.POTENTIAL), (1_000_001, ValueTier.POTENTIAL), (999_999, ValueTier.MASS),
    (None, ValueTier.MASS),
])
def test_potential_by_expected_lifetime_value(elv_minor: int | None, tier: ValueTier) -> None:
    signals = TierSignals(average_aum_minor=1_000 * CNY, expected_lifetime_value_minor=elv_minor)
    assert rules.value_tier(signals, TIERS) is tier


@pytest.mark.parametrize(("inflow_minor", "products", "tier"), [
    (2_000_000, 2, ValueTier.POTENTIAL), (2_000_001, 3, ValueTier.POTENTIAL), (1_999_999, 2, ValueTier.MASS),
    (2_000_000, 1, ValueTier.MASS), (-5_000_000, 5, ValueTier.MASS),
])
def test_potential_by_recent_inflow_and_products(inflow_minor: int, products: int, tier: ValueTier) -> None:
    signals = TierSignals(average_aum_minor=30_000 * CNY, aum_change_90d_minor=inflow_minor, product_count=products)
    assert rules.value_tier(signals, TIERS) is tier


def test_potential_paths_switched_off_qualify_nobody() -> None:
    off = dataclasses.replace(TIERS.potential, min_expected_lifetime_value_minor=None, min_inflow_90d_minor=None,
                              min_product_count=None)
    signals = TierSignals(average_aum_minor=0, aum_change_90d_minor=10**9, product_count=9,
                          expected_lifetime_value_minor=10**9)
    assert rules.value_tier(signals, dataclasses.replace(TIERS, potential=off)) is ValueTier.MASS


def test_aum_tiers_win_over_potential() -> None:
    signals = TierSignals(average_aum_minor=50_000 * CNY, expected_lifetime_value_minor=10**9)
    assert rules.value_tier(signals, TIERS) is ValueTier.MASS_AFFLUENT


def test_each_tier_carries_its_service_standard() -> None:
    private, mass = TIERS.definition(ValueTier.PRIVATE).service, TIERS.definition(ValueTier.MASS).service
    assert private.dedicated_relationship_manager and not mass.dedicated_relationship_manager
    assert private.complaint_response_hours < mass.complaint_response_hours
    assert not rules.validate(Thresholds())


tier_signals = st.builds(TierSignals, average_aum_minor=st.integers(0, 10**12), product_count=st.integers(0, 50),
                         aum_change_90d_minor=st.integers(-10**10, 10**10),
                         expected_lifetime_value_minor=st.none() | st.integers(0, 10**9))


@given(tier_signals, st.integers(1, 10**11))
def test_more_aum_never_a_lower_tier(signals: TierSignals, more: int) -> None:
    richer = dataclasses.replace(signals, average_aum_minor=signals.average_aum_minor + more)
    assert TIER_RANK[rules.value_tier(richer, TIERS)] <= TIER_RANK[rules.value_tier(signals, TIERS)]


# --- activity layers ----------------------------------------------------------------------------

ACTIVITY = ActivityThresholds()


@pytest.mark.parametrize(("days", "count", "products", "layer"), [
    (30, 3, 3, ActivityLayer.CORE), (0, 50, 9, ActivityLayer.CORE), (29, 3, 3, ActivityLayer.CORE),
    (31, 3, 3, ActivityLayer.ACTIVE), (30, 2, 3, ActivityLayer.ACTIVE), (30, 4, 3, ActivityLayer.CORE),
    (30, 3, 2, ActivityLayer.ACTIVE), (30, 3, 4, ActivityLayer.CORE),
    (180, 0, 0, ActivityLayer.ACTIVE), (179, 0, 0, ActivityLayer.ACTIVE), (181, 9, 9, ActivityLayer.DORMANT),
    (None, 0, 3, ActivityLayer.DORMANT),
])
def test_activity_layer(days: int | None, count: int, products: int, layer: ActivityLayer) -> None:
    assert rules.activity_layer(ActivitySignals(days, count, products), ACTIVITY) is layer


def test_activity_windows_are_configurable() -> None:
    weekly = ActivityThresholds(core_recency_days=7, core_window_days=28, core_min_activities=4, core_min_products=1,
                                active_window_days=60)
    assert rules.activity_layer(ActivitySignals(8, 10, 5), weekly) is ActivityLayer.ACTIVE
    assert rules.activity_layer(ActivitySignals(61, 10, 5), weekly) is ActivityLayer.DORMANT


# --- lifecycle stages ---------------------------------------------------------------------------

LIFECYCLE = LifecycleThresholds()
ACTIVE = ActivityLayer.ACTIVE


def stage(**overrides: object) -> LifecycleStage:
    values: dict[str, object] = dict(tenure_days=1000, closed=False, product_count=3, aum_minor=100_000 * CNY,
                                     aum_change_minor=0, holdings_opened=0, holdings_closed=0, activity_layer=ACTIVE)
    values.update(overrides)
    return rules.lifecycle_stage(LifecycleSignals(**values), LIFECYCLE)  # type: ignore[arg-type]


@pytest.mark.parametrize(("overrides", "expected"), [
    # 1: closed wins over everything, even a new customer.
    ({"closed": True, "tenure_days": 3}, LifecycleStage.CHURNED),
    # 2: acquisition below 180 days of tenure.
    ({"tenure_days": 179}, LifecycleStage.ACQUISITION), ({"tenure_days": 180}, LifecycleStage.MATURE),
    ({"tenure_days": 181}, LifecycleStage.MATURE),
    ({"tenure_days": 10, "product_count": 0, "activity_layer": ActivityLayer.DORMANT, "aum_minor": 0},
     LifecycleStage.ACQUISITION),
    # 3: no open product after acquisition.
    ({"product_count": 0, "aum_minor": 0, "aum_change_minor": 0}, LifecycleStage.CHURNED),
    # 4: dormant below 100 CNY is churned, at or above it declining.
    ({"activity_layer": ActivityLayer.DORMANT, "aum_minor": 9_999}, LifecycleStage.CHURNED),
    ({"activity_layer": ActivityLayer.DORMANT, "aum_minor": 10_000}, LifecycleStage.DECLINE),
    ({"activity_layer": ActivityLayer.DORMANT, "aum_minor": 10_001}, LifecycleStage.DECLINE),
    # 5: a 30 % fall (from 100,000 to 70,000), net closures.
    ({"aum_minor": 70_000 * CNY, "aum_change_minor": -30_000 * CNY}, LifecycleStage.DECLINE),
    ({"aum_minor": 70_000 * CNY + 1, "aum_change_minor": -30_000 * CNY + 1}, LifecycleStage.MATURE),
    ({"aum_minor": 70_000 * CNY - 1, "aum_change_minor": -30_000 * CNY - 1}, LifecycleStage.DECLINE),
    ({"holdings_closed": 1}, LifecycleStage.DECLINE),
    ({"holdings_closed": 1, "holdings_opened": 1}, LifecycleStage.MATURE),
    ({"holdings_closed": 1, "aum_minor": 200_000 * CNY, "aum_change_minor": 100_000 * CNY}, LifecycleStage.DECLINE),
    # 6: a 10 % rise (from 100,000 to 110,000) of AUM or of products.
    ({"aum_minor": 110_000 * CNY, "aum_change_minor": 10_000 * CNY}, LifecycleStage.GROWTH),
    ({"aum_minor": 110_000 * CNY - 1, "aum_change_minor": 10_000 * CNY - 1}, LifecycleStage.MATURE),
    ({"aum_minor": 110_000 * CNY + 1, "aum_change_minor": 10_000 * CNY + 1}, LifecycleStage.GROWTH),
    ({"aum_minor": 5_000 * CNY, "aum_change_minor": 5_000 * CNY}, LifecycleStage.GROWTH),
    ({"product_count": 11, "holdings_opened": 1}, LifecycleStage.GROWTH),  # 10 -> 11: exactly 10 %
    ({"product_count": 12, "holdings_opened": 1}, LifecycleStage.MATURE),  # 11 -> 12: 9.1 %
    ({"product_count": 1, "holdings_opened": 1}, LifecycleStage.GROWTH),  # from none
    # 7: otherwise mature.
    ({}, LifecycleStage.MATURE),
])
def test_lifecycle_decision_table(overrides: dict[str, object], expected: LifecycleStage) -> None:
    assert stage(**overrides) is expected
