"""Standard classifications as the service's code sees them: the classes, the signals each is
decided from, and the thresholds an operator configures. Plain values, no protos, no I/O.

The enums mirror the contract's numbers (`crm.segment.v1`, classification.proto), so `api/`
converts by value; `RfmSegment` too.
Money is integer minor units of the bank's reporting currency; the defaults assume CNY (2
decimals), so `600_000_000` is 6,000,000.00 CNY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum


class ValueTier(IntEnum):
    UNSPECIFIED = 0
    PRIVATE = 1
    VIP = 2
    MASS_AFFLUENT = 3
    MASS = 4
    POTENTIAL = 5


# Evaluation order and value order, highest first: potential ranks above mass though its enum
# number is higher (the contract's `ValueTierDefinition.rank`).
TIER_RANK = {ValueTier.PRIVATE: 1, ValueTier.VIP: 2, ValueTier.MASS_AFFLUENT: 3, ValueTier.POTENTIAL: 4,
             ValueTier.MASS: 5}


class ActivityLayer(IntEnum):
    UNSPECIFIED = 0
    CORE = 1
    ACTIVE = 2
    DORMANT = 3


class LifecycleStage(IntEnum):
    UNSPECIFIED = 0
    ACQUISITION = 1
    GROWTH = 2
    MATURE = 3
    DECLINE = 4
    CHURNED = 5


REPORTING_CURRENCY = "CNY"
MINOR_PER_UNIT = 100


class RfmSegment(IntEnum):
    UNSPECIFIED = 0
    CHAMPIONS = 1
    LOYAL = 2
    POTENTIAL_LOYALISTS = 3
    NEW = 4
    PROMISING = 5
    NEED_ATTENTION = 6
    ABOUT_TO_SLEEP = 7
    AT_RISK = 8
    CANT_LOSE_THEM = 9
    HIBERNATING = 10
    LOST = 11


# ---------------------------------------------------------------------------------------------
# Signals: what the decisions read, mapped by the caller from profile's derived features.


@dataclass(frozen=True)
class TierSignals:
    """average_aum_minor: the qualifying AUM (profile's `average_aum_90d`: a 90-day daily average,
    so a one-day deposit does not buy a tier). expected_lifetime_value_minor: None until a
    lifetime-value model has predicted one."""

    average_aum_minor: int
    product_count: int = 0
    aum_change_90d_minor: int = 0
    expected_lifetime_value_minor: int | None = None


@dataclass(frozen=True)
class ActivitySignals:
    """Activity is a customer-initiated transaction or a login. days_since_last_activity: None when
    there never was one; activity_count: activities within `ActivityThresholds.core_window_days`."""

    days_since_last_activity: int | None
    activity_count: int
    product_count: int


@dataclass(frozen=True)
class LifecycleSignals:
    """Trend values cover `LifecycleThresholds.trend_window_days` (profile publishes 90-day ones):
    aum_change_minor is AUM now minus AUM at the window's start."""

    tenure_days: int
    closed: bool
    product_count: int
    aum_minor: int
    aum_change_minor: int
    holdings_opened: int
    holdings_closed: int
    activity_layer: ActivityLayer


@dataclass(frozen=True)
class RfmInput:
    """One customer's RFM inputs. recency_days: None when there never was a transaction."""

    customer_id: str
    recency_days: int | None
    frequency: int
    monetary_minor: int


@dataclass(frozen=True)
class RfmScore:
    customer_id: str
    recency: int
    frequency: int
    monetary: int
    segment: RfmSegment

    @property
    def cell(self) -> str:
        return f"{self.recency}{self.frequency}{self.monetary}"


# ---------------------------------------------------------------------------------------------
# Thresholds: deployment defaults an operator changes through the API (UpdateValueTier and its
# siblings); `rules.validate` names every bad field at once.


@dataclass(frozen=True)
class ServiceStandard:
    """What the bank promises a tier's customers; feedback reads the response target, campaign the
    contact caps and care programme."""

    dedicated_relationship_manager: bool
    priority_service: bool
    complaint_response_hours: int
    max_marketing_contacts_per_week: int
    max_marketing_contacts_per_month: int
    care_programme: str
    min_contacts_per_year: int = 0
    max_customers_per_manager: int = 0
    benefits: tuple[str, ...] = ()


@dataclass(frozen=True)
class TierDefinition:
    """How a customer qualifies for one tier, and its service standard. min_average_aum_minor is
    for private, VIP and mass affluent only; the potential criteria for potential only (either the
    expected lifetime value or the recent inflow with enough products qualifies; None turns that
    path off)."""

    display_name: str
    service: ServiceStandard
    min_average_aum_minor: int | None = None
    min_expected_lifetime_value_minor: int | None = None
    min_inflow_90d_minor: int | None = None
    min_product_count: int | None = None
    downgrade_grace_months: int = 0


# Defaults for a Chinese retail bank, in CNY fen:
# - private banking from 6,000,000 CNY of financial assets, the line most large Chinese banks use
#   for private banking customers;
# - VIP (wealth management) from 500,000 CNY, the usual entry to a bank's wealth card (e.g. the
#   "Sunflower" level);
# - mass affluent from 50,000 CNY, the usual gold-card level;
# - potential: an expected 3-year lifetime value of 10,000 CNY, or, while no model has predicted
#   one, net inflows of 20,000 CNY in 90 days with at least 2 products (young professionals
#   building savings: at that pace they reach mass affluent within a year or so);
# - mass: everyone else.
# A customer keeps private, VIP or mass affluent for 3 months after falling below its threshold
# (a market dip should not take away a relationship manager overnight).
# Response targets and contact caps fall with the tier: the more a customer holds, the faster the
# answer and the fewer (better targeted) marketing contacts.
PRIVATE = TierDefinition(
    display_name="Private Banking", min_average_aum_minor=600_000_000,
    service=ServiceStandard(dedicated_relationship_manager=True, priority_service=True, complaint_response_hours=4,
                            max_marketing_contacts_per_week=1, max_marketing_contacts_per_month=2,
                            care_programme="Private banker care", min_contacts_per_year=24,
                            max_customers_per_manager=50),
    downgrade_grace_months=3)
VIP = TierDefinition(
    display_name="VIP", min_average_aum_minor=50_000_000,
    service=ServiceStandard(dedicated_relationship_manager=True, priority_service=True, complaint_response_hours=12,
                            max_marketing_contacts_per_week=1, max_marketing_contacts_per_month=3,
                            care_programme="Wealth relationship care", min_contacts_per_year=12,
                            max_customers_per_manager=300),
    downgrade_grace_months=3)
MASS_AFFLUENT = TierDefinition(
    display_name="Mass Affluent", min_average_aum_minor=5_000_000,
    service=ServiceStandard(dedicated_relationship_manager=False, priority_service=True, complaint_response_hours=24,
                            max_marketing_contacts_per_week=2, max_marketing_contacts_per_month=4,
                            care_programme="Relationship team care", min_contacts_per_year=4),
    downgrade_grace_months=3)
POTENTIAL = TierDefinition(
    display_name="Potential", min_expected_lifetime_value_minor=1_000_000, min_inflow_90d_minor=2_000_000,
    min_product_count=2,
    service=ServiceStandard(dedicated_relationship_manager=False, priority_service=False, complaint_response_hours=48,
                            max_marketing_contacts_per_week=2, max_marketing_contacts_per_month=6,
                            care_programme="Growth starter", min_contacts_per_year=2))
MASS = TierDefinition(
    display_name="Mass",
    service=ServiceStandard(dedicated_relationship_manager=False, priority_service=False, complaint_response_hours=48,
                            max_marketing_contacts_per_week=2, max_marketing_contacts_per_month=4,
                            care_programme="Digital self-service"))


@dataclass(frozen=True)
class TierThresholds:
    private: TierDefinition = PRIVATE
    vip: TierDefinition = VIP
    mass_affluent: TierDefinition = MASS_AFFLUENT
    potential: TierDefinition = POTENTIAL
    mass: TierDefinition = MASS

    def definition(self, tier: ValueTier) -> TierDefinition:
        return getattr(self, TIER_KEYS[tier])


TIER_KEYS = {ValueTier.PRIVATE: "private", ValueTier.VIP: "vip", ValueTier.MASS_AFFLUENT: "mass_affluent",
             ValueTier.POTENTIAL: "potential", ValueTier.MASS: "mass"}
DEFAULT_TIERS = TierThresholds()


@dataclass(frozen=True)
class RfmBoundary:
    """The last (value, customer id) of one quintile in a run's ordering (see
    `rules.rfm_boundaries`); None when the quintile is empty (fewer than five scored customers)."""

    value: int
    customer_id: str


@dataclass(frozen=True)
class RfmBoundaries:
    """Where a classification run cut each of the three orderings into quintiles: four cuts
    each, lowest first. Scoring one customer against them (`rules.rfm_score_against`) gives the
    score the run would have given, so a customer reclassified between runs is scored against
    the same population."""

    recency: tuple[RfmBoundary | None, ...]
    frequency: tuple[RfmBoundary | None, ...]
    monetary: tuple[RfmBoundary | None, ...]


@dataclass(frozen=True)
class TierState:
    """A customer's stored tier and its history, what the downgrade grace decides from."""

    tier: ValueTier
    since: date | None
    previous: ValueTier
    downgrade_due_on: date | None


@dataclass(frozen=True)
class ActivityThresholds:
    """Core: an activity within `core_recency_days`, at least `core_min_activities` within
    `core_window_days` (3 in 90 days: about one a month, the contract's "each of the last 3
    months") and `core_min_products` products. Active: an activity within `active_window_days`
    (6 months, the contract's line). Dormant: none for longer, or never."""

    core_recency_days: int = 30
    core_window_days: int = 90
    core_min_activities: int = 3
    core_min_products: int = 3
    active_window_days: int = 180


@dataclass(frozen=True)
class LifecycleThresholds:
    """See `rules.lifecycle_stage` for the decision table. Percentages are whole percent of the
    value at the window's start; `churn_max_aum_minor` is 100 CNY, the balance below which a
    dormant account is abandoned rather than resting."""

    acquisition_days: int = 180
    trend_window_days: int = 90
    growth_min_percent: int = 10
    decline_min_drop_percent: int = 30
    decline_min_net_closures: int = 1
    churn_max_aum_minor: int = 10_000


@dataclass(frozen=True)
class Thresholds:
    tiers: TierThresholds = field(default_factory=TierThresholds)
    activity: ActivityThresholds = field(default_factory=ActivityThresholds)
    lifecycle: LifecycleThresholds = field(default_factory=LifecycleThresholds)


# `valueTiers/{slug}` in the contract's resource names.
TIER_SLUGS = {ValueTier.PRIVATE: "private", ValueTier.VIP: "vip", ValueTier.MASS_AFFLUENT: "mass-affluent",
              ValueTier.POTENTIAL: "potential", ValueTier.MASS: "mass"}


@dataclass(frozen=True)
class StoredTier:
    """A tier's definition as stored, with its etag and how many customers hold the tier now."""

    tier: ValueTier
    definition: TierDefinition
    version: int
    updater: str
    updated_at: datetime
    customer_count: int = 0

    @property
    def name(self) -> str:
        return f"valueTiers/{TIER_SLUGS[self.tier]}"

    @property
    def etag(self) -> str:
        return str(self.version)


@dataclass(frozen=True)
class StoredThresholds:
    """The activity and lifecycle thresholds as stored, with their etag."""

    activity: ActivityThresholds
    lifecycle: LifecycleThresholds
    version: int
    updater: str
    updated_at: datetime

    name = "classificationThresholds"

    @property
    def etag(self) -> str:
        return str(self.version)


@dataclass(frozen=True)
class ClassificationInputs:
    """One customer's read-model row as the decisions need it (money in minor units); `current`
    is the stored classification the new one follows on from."""

    customer_id: str
    relationship_manager_id: str
    closed: bool
    average_aum_minor: int
    aum_minor: int
    aum_change_90d_minor: int
    product_count: int
    tenure_days: int
    days_since_last_activity: int | None
    activity_count_90d: int
    holdings_opened_90d: int
    holdings_closed_90d: int
    recency_days: int | None
    frequency: int
    monetary_minor: int
    rfm_window_days: int | None
    features_as_of: datetime
    current: Classification | None = None


@dataclass(frozen=True)
class Classification:
    customer_id: str
    tier: TierState
    qualifying_aum_minor: int
    activity_layer: ActivityLayer
    activity_layer_since: date | None
    lifecycle_stage: LifecycleStage
    lifecycle_stage_since: date | None
    rfm: RfmScore | None
    rfm_recency_days: int | None
    rfm_frequency: int
    rfm_monetary_minor: int
    rfm_window_days: int | None
    expected_lifetime_value_minor: int | None
    classified_at: datetime | None
    features_as_of: datetime
    relationship_manager_id: str = ""

    def moved_from(self, before: Classification | None) -> bool:
        """Whether the tier, layer or stage differs from `before` (what the change feed carries)."""
        return before is None or (self.tier.tier, self.activity_layer, self.lifecycle_stage) != (
            before.tier.tier, before.activity_layer, before.lifecycle_stage)
