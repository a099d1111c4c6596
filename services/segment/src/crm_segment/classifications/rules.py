"""Pure decisions of the standard classifications: value tier, activity layer, lifecycle stage,
RFM scores and named RFM segment, and what valid thresholds are. No I/O.

Value tier (first match, in rank order; `a` = qualifying average AUM):

| rank | tier          | qualifies when                                                          |
|------|---------------|-------------------------------------------------------------------------|
| 1    | private       | a >= tiers.private.min_average_aum (6,000,000 CNY)                      |
| 2    | VIP           | a >= tiers.vip.min_average_aum (500,000 CNY)                            |
| 3    | mass affluent | a >= tiers.mass_affluent.min_average_aum (50,000 CNY)                   |
| 4    | potential     | expected lifetime value >= min_expected_lifetime_value (10,000 CNY), or |
|      |               | 90-day AUM change >= min_inflow_90d (20,000 CNY) and products >= 2      |
| 5    | mass          | everyone else                                                           |

Activity layer (first match; activity = customer-initiated transaction or login):

| layer   | last activity within        | activities in core window   | products   |
|---------|-----------------------------|-----------------------------|------------|
| core    | core_recency_days (30)      | >= core_min_activities (3 in 90 days) | >= 3 |
| active  | active_window_days (180)    | any                         | any        |
| dormant | longer ago, or never        | any                         | any        |

Lifecycle stage (first match; trend over `trend_window_days`, "before" = value at its start):

| # | condition                                                                     | stage       |
|---|-------------------------------------------------------------------------------|-------------|
| 1 | the customer is closed                                                        | churned     |
| 2 | tenure < acquisition_days (180)                                               | acquisition |
| 3 | no open product                                                               | churned     |
| 4 | dormant and AUM < churn_max_aum (100 CNY)                                     | churned     |
| 5 | dormant, or AUM fell >= 30 % of before, or net closures >= 1                  | decline     |
| 6 | AUM rose >= 10 % of before (or from none), or products rose >= 10 % (or from none) | growth |
| 7 | otherwise                                                                     | mature      |

Acquisition comes before the dormancy rules so a customer onboarded last week, with nothing
done yet, is being acquired rather than lost; decline comes before growth because a churn signal
is the one to act on even while assets grow.

RFM: see `rfm_scores` and `RFM_GRID`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import date, datetime
from enum import Enum
from itertools import pairwise

from crm_segment.classifications.model import (
    TIER_KEYS,
    TIER_RANK,
    ActivityLayer,
    ActivitySignals,
    ActivityThresholds,
    Classification,
    ClassificationInputs,
    LifecycleSignals,
    LifecycleStage,
    LifecycleThresholds,
    RfmBoundaries,
    RfmBoundary,
    RfmInput,
    RfmScore,
    RfmSegment,
    ServiceStandard,
    Thresholds,
    TierDefinition,
    TierSignals,
    TierState,
    TierThresholds,
    ValueTier,
)
from crmkit.validation import Violations, bounds_rule

MAX_DISPLAY_NAME = 50
MAX_CARE_PROGRAMME = 50
MAX_RESPONSE_HOURS = 14 * 24
MAX_CONTACTS_PER_WEEK = 14
MAX_CONTACTS_PER_MONTH = 60
MAX_CONTACTS_PER_YEAR = 52
MAX_DAYS = 3650
MAX_COUNT = 10_000
MAX_GROWTH_PERCENT = 1000
MAX_GRACE_MONTHS = 12
MAX_BENEFITS = 20
MAX_BENEFIT = 100
QUINTILES = 5

# Tiers qualified by AUM alone, highest first.
AUM_TIERS = (ValueTier.PRIVATE, ValueTier.VIP, ValueTier.MASS_AFFLUENT)


# ---------------------------------------------------------------------------------------------
# Decisions


def value_tier(signals: TierSignals, tiers: TierThresholds) -> ValueTier:
    for tier in AUM_TIERS:
        threshold = tiers.definition(tier).min_average_aum_minor
        if threshold is not None and signals.average_aum_minor >= threshold:
            return tier
    if qualifies_as_potential(signals, tiers.potential):
        return ValueTier.POTENTIAL
    return ValueTier.MASS


def qualifies_as_potential(signals: TierSignals, potential: TierDefinition) -> bool:
    by_value = (potential.min_expected_lifetime_value_minor is not None
                and signals.expected_lifetime_value_minor is not None
                and signals.expected_lifetime_value_minor >= potential.min_expected_lifetime_value_minor)
    by_inflow = (potential.min_inflow_90d_minor is not None and potential.min_product_count is not None
                 and signals.aum_change_90d_minor >= potential.min_inflow_90d_minor
                 and signals.product_count >= potential.min_product_count)
    return by_value or by_inflow


def activity_layer(signals: ActivitySignals, thresholds: ActivityThresholds) -> ActivityLayer:
    days = signals.days_since_last_activity
    if days is None or days > thresholds.active_window_days:
        return ActivityLayer.DORMANT
    if (days <= thresholds.core_recency_days and signals.activity_count >= thresholds.core_min_activities
            and signals.product_count >= thresholds.core_min_products):
        return ActivityLayer.CORE
    return ActivityLayer.ACTIVE


def lifecycle_stage(signals: LifecycleSignals, thresholds: LifecycleThresholds) -> LifecycleStage:
    dormant = signals.activity_layer is ActivityLayer.DORMANT
    if signals.closed:
        return LifecycleStage.CHURNED
    if signals.tenure_days < thresholds.acquisition_days:
        return LifecycleStage.ACQUISITION
    if signals.product_count == 0 or (dormant and signals.aum_minor < thresholds.churn_max_aum_minor):
        return LifecycleStage.CHURNED
    aum_before = signals.aum_minor - signals.aum_change_minor
    net_opened = signals.holdings_opened - signals.holdings_closed
    products_before = signals.product_count - net_opened
    if (dormant or -net_opened >= thresholds.decline_min_net_closures
            or _fell_by(aum_before, signals.aum_change_minor, thresholds.decline_min_drop_percent)):
        return LifecycleStage.DECLINE
    if (_rose_by(aum_before, signals.aum_change_minor, thresholds.growth_min_percent)
            or _rose_by(products_before, net_opened, thresholds.growth_min_percent)):
        return LifecycleStage.GROWTH
    return LifecycleStage.MATURE


def _rose_by(before: int, change: int, percent: int) -> bool:
    """Integer arithmetic, so a rise of exactly `percent` counts whatever the amounts."""
    if change <= 0:
        return False
    return before <= 0 or change * 100 >= percent * before


def _fell_by(before: int, change: int, percent: int) -> bool:
    return before > 0 and change < 0 and -change * 100 >= percent * before


def next_tier_state(state: TierState, computed: ValueTier, *, grace_months: int, today: date) -> TierState:
    """The stored tier after a classification that computed `computed`. Upgrades (and a first
    tier) are immediate; a downgrade waits `grace_months` (the current tier's grace) from the first
    classification that failed its threshold, and is forgotten when the customer requalifies."""
    current = state.tier
    if current is ValueTier.UNSPECIFIED or TIER_RANK[computed] <= TIER_RANK[current]:
        if computed is current:
            return TierState(current, state.since, state.previous, None)
        return TierState(computed, today, current, None)
    due = state.downgrade_due_on or add_months(today, grace_months)
    if today >= due:
        return TierState(computed, today, current, None)
    return TierState(current, state.since, state.previous, due)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it has fewer days."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


# ---------------------------------------------------------------------------------------------
# RFM


class Ties(Enum):
    """How equal values are scored. SPLIT (the default) keeps every quintile at a fifth of the
    population, the contract's "quintiles": equal values are ordered by customer id, so two
    customers with the same value may score one apart but always the same way, whatever the input
    order. SHARED gives equal values one score (that of the group's lowest position), at the cost
    of uneven quintiles where values pile up (half of CDNOW's customers bought once)."""

    SPLIT = "split"
    SHARED = "shared"


# Named segments on the recency score (rows, 5 first) and the frequency-monetary score (columns,
# 1 to 5): the usual RFM map, with "lost" carved out of hibernating's worst corner.
_C, _L, _P, _N, _PR, _NA, _S, _R, _CL, _H, _X = (
    RfmSegment.CHAMPIONS, RfmSegment.LOYAL, RfmSegment.POTENTIAL_LOYALISTS, RfmSegment.NEW, RfmSegment.PROMISING,
    RfmSegment.NEED_ATTENTION, RfmSegment.ABOUT_TO_SLEEP, RfmSegment.AT_RISK, RfmSegment.CANT_LOSE_THEM,
    RfmSegment.HIBERNATING, RfmSegment.LOST)
RFM_GRID: dict[int, tuple[RfmSegment, ...]] = {
    #     FM: 1    2    3    4    5
    5: (_N, _P, _P, _C, _C),
    4: (_PR, _P, _P, _L, _L),
    3: (_S, _S, _NA, _L, _L),
    2: (_H, _H, _R, _R, _CL),
    1: (_X, _H, _R, _R, _CL),
}


def frequency_monetary(frequency: int, monetary: int) -> int:
    """The combined FM score: the mean of the two, halves rounded up."""
    return (frequency + monetary + 1) // 2


def rfm_segment(recency: int, frequency: int, monetary: int) -> RfmSegment:
    return RFM_GRID[recency][frequency_monetary(frequency, monetary) - 1]


def rfm_scores(customers: Sequence[RfmInput], ties: Ties = Ties.SPLIT) -> list[RfmScore]:
    """Scores 1 (worst fifth) to 5 (best fifth) for recency, frequency and monetary value, in the
    order of `customers`. Quintiles are over the customers with a transaction; the others score 1
    on all three (and so are lost). A top-level function of picklable values, for a spawn worker.
    """
    ids = [c.customer_id for c in customers]
    if len(set(ids)) != len(ids):
        raise ValueError("each customer must appear once")
    scored = [c for c in customers if c.recency_days is not None and c.frequency > 0]
    # Lower recency_days is better; `scored` guarantees it is set.
    recency = _quintiles(scored, lambda c: -(c.recency_days or 0), ties)
    frequency = _quintiles(scored, lambda c: c.frequency, ties)
    monetary = _quintiles(scored, lambda c: c.monetary_minor, ties)
    result = []
    for c in customers:
        r, f, m = recency.get(c.customer_id, 1), frequency.get(c.customer_id, 1), monetary.get(c.customer_id, 1)
        result.append(RfmScore(c.customer_id, r, f, m, rfm_segment(r, f, m)))
    return result


def rfm_keys(customer: RfmInput) -> tuple[int, int, int] | None:
    """The values each ordering sorts by (higher is better): -recency days, frequency, monetary;
    None for a customer without a transaction, who scores 1 on all three."""
    if customer.recency_days is None or customer.frequency <= 0:
        return None
    return -customer.recency_days, customer.frequency, customer.monetary_minor


def cut_positions(count: int) -> tuple[int, ...]:
    """1-based positions, in an ordering of `count` scored customers, of the last customer of
    quintiles 1 to 4 (0 when the quintile is empty): score = ceil(5 * position / count)."""
    return tuple(k * count // QUINTILES for k in range(1, QUINTILES))


def rfm_boundaries(customers: Sequence[RfmInput]) -> RfmBoundaries:
    """The quintile cuts `rfm_scores` (SPLIT ties) makes of `customers`; the reference for the
    SQL that finds them over the whole read model."""
    scored = [(keys, c.customer_id) for c in customers if (keys := rfm_keys(c)) is not None]
    positions = cut_positions(len(scored))
    cuts = []
    for dimension in range(3):
        ordered = sorted((keys[dimension], customer_id) for keys, customer_id in scored)
        cuts.append(tuple(RfmBoundary(*ordered[p - 1]) if p > 0 else None for p in positions))
    return RfmBoundaries(*cuts)


def rfm_score_against(boundaries: RfmBoundaries, customer: RfmInput) -> RfmScore:
    """The score a run with these cuts gives `customer`: one more than the cuts below it."""
    keys = rfm_keys(customer)
    if keys is None:
        r = f = m = 1
    else:
        own = customer.customer_id
        r, f, m = (1 + sum(1 for cut in cuts if cut is None or (key, own) > (cut.value, cut.customer_id))
                   for key, cuts in zip(keys, (boundaries.recency, boundaries.frequency, boundaries.monetary),
                                        strict=True))
    return RfmScore(customer.customer_id, r, f, m, rfm_segment(r, f, m))


def _quintiles(customers: Sequence[RfmInput], value: Callable[[RfmInput], int], ties: Ties) -> dict[str, int]:
    ordered = sorted(customers, key=lambda c: (value(c), c.customer_id))
    count = len(ordered)
    scores: dict[str, int] = {}
    group_value: Hashable = None
    group_score = 0
    for position, c in enumerate(ordered):
        # ceil(5 * (position + 1) / count): even quintiles, and the best customer scores 5 however few there are.
        score = -(-QUINTILES * (position + 1) // count)
        if ties is Ties.SHARED:
            if position == 0 or value(c) != group_value:
                group_value, group_score = value(c), score
            score = group_score
        scores[c.customer_id] = score
    return scores


# ---------------------------------------------------------------------------------------------
# Validation: field names as the API will spell them (`tiers.vip.min_average_aum`).


def validate(thresholds: Thresholds) -> Violations:
    violations = Violations()
    validate_tiers(thresholds.tiers, violations)
    validate_activity(thresholds.activity, violations)
    validate_lifecycle(thresholds.lifecycle, violations)
    return violations


def validate_tiers(tiers: TierThresholds, violations: Violations, prefix: str = "tiers.") -> None:
    for tier, key in TIER_KEYS.items():
        definition, at = tiers.definition(tier), f"{prefix}{key}."
        _text(definition.display_name, f"{at}display_name", MAX_DISPLAY_NAME, violations)
        if tier in AUM_TIERS:
            if definition.min_average_aum_minor is None:
                violations.add(f"{at}min_average_aum", "is required")
            else:
                violations.check(definition.min_average_aum_minor > 0, f"{at}min_average_aum", "must be positive")
        else:
            violations.check(definition.min_average_aum_minor is None, f"{at}min_average_aum",
                             f"must be unset for {key}")
        _potential_criteria(definition, at, tier is ValueTier.POTENTIAL, violations)
        _bounded(definition.downgrade_grace_months, f"{at}downgrade_grace_months", 0, MAX_GRACE_MONTHS, violations)
        _service(definition.service, f"{at}service_standard.", violations)
    # Each AUM tier strictly above the next: otherwise the lower one could never be reached.
    for higher, lower in pairwise(AUM_TIERS):
        high, low = tiers.definition(higher).min_average_aum_minor, tiers.definition(lower).min_average_aum_minor
        if high is not None and low is not None:
            violations.check(low < high, f"{prefix}{TIER_KEYS[lower]}.min_average_aum",
                             f"must be below {prefix}{TIER_KEYS[higher]}.min_average_aum ({high})")


def _potential_criteria(definition: TierDefinition, at: str, is_potential: bool, violations: Violations) -> None:
    criteria = {"min_expected_lifetime_value": definition.min_expected_lifetime_value_minor,
                "min_inflow_90d": definition.min_inflow_90d_minor, "min_product_count": definition.min_product_count}
    if not is_potential:
        for name, number in criteria.items():
            violations.check(number is None, f"{at}{name}", "must be unset except for potential")
        return
    for name in ("min_expected_lifetime_value", "min_inflow_90d"):
        number = criteria[name]
        violations.check(number is None or number > 0, f"{at}{name}", "must be positive")
    if definition.min_product_count is not None:
        violations.check(0 <= definition.min_product_count <= MAX_COUNT, f"{at}min_product_count",
                         bounds_rule(0, MAX_COUNT))
    # The inflow path reads both; one without the other is a half-made change.
    violations.check((definition.min_inflow_90d_minor is None) == (definition.min_product_count is None),
                     f"{at}min_product_count", f"must be set exactly when {at}min_inflow_90d is")


def _service(service: ServiceStandard, at: str, violations: Violations) -> None:
    _bounded(service.max_customers_per_manager, f"{at}max_customers_per_manager", 0, MAX_COUNT, violations)
    if violations.check(len(service.benefits) <= MAX_BENEFITS, f"{at}benefits",
                        f"must have at most {MAX_BENEFITS} entries"):
        for index, benefit in enumerate(service.benefits):
            _text(benefit, f"{at}benefits[{index}]", MAX_BENEFIT, violations)
    _bounded(service.complaint_response_hours, f"{at}complaint_response_hours", 1, MAX_RESPONSE_HOURS, violations)
    week, month = service.max_marketing_contacts_per_week, service.max_marketing_contacts_per_month
    _bounded(week, f"{at}max_marketing_contacts_per_week", 0, MAX_CONTACTS_PER_WEEK, violations)
    if _bounded(month, f"{at}max_marketing_contacts_per_month", 0, MAX_CONTACTS_PER_MONTH, violations):
        # A weekly cap above the monthly one can never bind: the operator meant something else.
        violations.check(week <= month, f"{at}max_marketing_contacts_per_week",
                         f"must be at most {at}max_marketing_contacts_per_month ({month})")
    _bounded(service.min_contacts_per_year, f"{at}min_contacts_per_year", 0, MAX_CONTACTS_PER_YEAR, violations)
    _text(service.care_programme, f"{at}care_programme", MAX_CARE_PROGRAMME, violations)


def validate_activity(activity: ActivityThresholds, violations: Violations, prefix: str = "activity.") -> None:
    _bounded(activity.active_window_days, f"{prefix}active_window_days", 1, MAX_DAYS, violations)
    _bounded(activity.core_window_days, f"{prefix}core_window_days", 1, activity.active_window_days, violations,
             high_name=f"{prefix}active_window_days")
    _bounded(activity.core_recency_days, f"{prefix}core_recency_days", 1, activity.core_window_days, violations,
             high_name=f"{prefix}core_window_days")
    _bounded(activity.core_min_activities, f"{prefix}core_min_activities", 1, MAX_COUNT, violations)
    _bounded(activity.core_min_products, f"{prefix}core_min_products", 0, MAX_COUNT, violations)


def validate_lifecycle(lifecycle: LifecycleThresholds, violations: Violations, prefix: str = "lifecycle.") -> None:
    _bounded(lifecycle.acquisition_days, f"{prefix}acquisition_days", 0, MAX_DAYS, violations)
    _bounded(lifecycle.trend_window_days, f"{prefix}trend_window_days", 1, MAX_DAYS, violations)
    _bounded(lifecycle.growth_min_percent, f"{prefix}growth_min_percent", 1, MAX_GROWTH_PERCENT, violations)
    _bounded(lifecycle.decline_min_drop_percent, f"{prefix}decline_min_drop_percent", 1, 100, violations)
    _bounded(lifecycle.decline_min_net_closures, f"{prefix}decline_min_net_closures", 1, MAX_COUNT, violations)
    violations.check(lifecycle.churn_max_aum_minor >= 0, f"{prefix}churn_max_aum", "must not be negative")


def _bounded(number: int, field: str, low: int, high: int, violations: Violations, *,
             high_name: str | None = None) -> bool:
    if low <= number <= high:
        return True
    violations.add(field, bounds_rule(low, f"{high_name} ({high})" if high_name else high))
    return False


def _text(value: str, field: str, limit: int, violations: Violations) -> None:
    if violations.check(1 <= len(value) <= limit, field, f"must be 1 to {limit} characters"):
        violations.text(value, field)


# ---------------------------------------------------------------------------------------------
# One customer's classification


def classify(inputs: ClassificationInputs, *, thresholds: Thresholds, boundaries: RfmBoundaries | None,
             expected_lifetime_value_minor: int | None, now: datetime) -> Classification:
    """Every classification of one customer from their read-model row; the dates a class was
    entered carry over from `inputs.current` while it stays."""
    today = now.date()
    current = inputs.current
    computed = value_tier(TierSignals(
        average_aum_minor=inputs.average_aum_minor, product_count=inputs.product_count,
        aum_change_90d_minor=inputs.aum_change_90d_minor, expected_lifetime_value_minor=expected_lifetime_value_minor,
    ), thresholds.tiers)
    before = current.tier if current is not None else TierState(ValueTier.UNSPECIFIED, None, ValueTier.UNSPECIFIED,
                                                               None)
    grace = (thresholds.tiers.definition(before.tier).downgrade_grace_months
             if before.tier is not ValueTier.UNSPECIFIED else 0)
    tier = next_tier_state(before, computed, grace_months=grace, today=today)
    layer = activity_layer(ActivitySignals(days_since_last_activity=inputs.days_since_last_activity,
                                           activity_count=inputs.activity_count_90d,
                                           product_count=inputs.product_count), thresholds.activity)
    stage = lifecycle_stage(LifecycleSignals(
        tenure_days=inputs.tenure_days, closed=inputs.closed, product_count=inputs.product_count,
        aum_minor=inputs.aum_minor, aum_change_minor=inputs.aum_change_90d_minor,
        holdings_opened=inputs.holdings_opened_90d, holdings_closed=inputs.holdings_closed_90d,
        activity_layer=layer), thresholds.lifecycle)
    rfm_input = RfmInput(inputs.customer_id, inputs.recency_days, inputs.frequency, inputs.monetary_minor)
    rfm = rfm_score_against(boundaries, rfm_input) if boundaries is not None else None
    return Classification(
        customer_id=inputs.customer_id, tier=tier, qualifying_aum_minor=inputs.average_aum_minor,
        activity_layer=layer,
        activity_layer_since=_since(current.activity_layer if current else None, layer,
                                    current.activity_layer_since if current else None, today),
        lifecycle_stage=stage,
        lifecycle_stage_since=_since(current.lifecycle_stage if current else None, stage,
                                     current.lifecycle_stage_since if current else None, today),
        rfm=rfm, rfm_recency_days=inputs.recency_days, rfm_frequency=inputs.frequency,
        rfm_monetary_minor=inputs.monetary_minor, rfm_window_days=inputs.rfm_window_days,
        expected_lifetime_value_minor=expected_lifetime_value_minor, classified_at=now,
        features_as_of=inputs.features_as_of, relationship_manager_id=inputs.relationship_manager_id)


def _since(before: object | None, now_in: object, since: date | None, today: date) -> date:
    return since if before == now_in and since is not None else today
