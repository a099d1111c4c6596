"""Trigger rules as the service's code sees them: plain values, no protos. Field names mirror the
proto's paths so that update masks apply to them directly (crm_campaign.field_masks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import IntEnum

from crm_campaign.campaigns.model import Money


class TriggerRuleState(IntEnum):
    """crm.campaign.v1.TriggerRuleState."""

    UNSPECIFIED = 0
    ENABLED = 1
    DISABLED = 2


class TriggerEventType(IntEnum):
    """crm.campaign.v1.TriggerEventType: one per `TriggerRule.condition` case."""

    UNSPECIFIED = 0
    PRODUCT_MATURITY = 1
    BIRTHDAY = 2
    ANNIVERSARY = 3
    DORMANCY = 4
    CARD_APPLICATION = 5
    PAYROLL = 6
    SEGMENT_ENTRY = 7


class CareTaskKind(IntEnum):
    """crm.campaign.v1.CareTaskKind."""

    UNSPECIFIED = 0
    OFFER_FOLLOW_UP = 1
    MATURITY_FOLLOW_UP = 2
    BIRTHDAY_GREETING = 3
    ANNIVERSARY_GREETING = 4
    REACTIVATION = 5
    SERVICE_REVIEW = 6
    OTHER = 7


class CareTaskPriority(IntEnum):
    """crm.campaign.v1.CareTaskPriority."""

    UNSPECIFIED = 0
    LOW = 1
    NORMAL = 2
    HIGH = 3


@dataclass(frozen=True)
class ProductMaturityCondition:
    product_codes: tuple[str, ...] = ()
    # None: the default, 14 days.
    lead_time: timedelta | None = None
    min_amount: Money | None = None


@dataclass(frozen=True)
class BirthdayCondition:
    lead_time: timedelta | None = None


@dataclass(frozen=True)
class AnniversaryCondition:
    lead_time: timedelta | None = None
    years: tuple[int, ...] = ()


@dataclass(frozen=True)
class DormancyCondition:
    inactive_for: timedelta | None = None


@dataclass(frozen=True)
class CardApplicationCondition:
    card_product_codes: tuple[str, ...] = ()
    approved_only: bool = False


@dataclass(frozen=True)
class PayrollCondition:
    min_monthly_amount: Money | None = None
    # 0: the default, 3.
    consecutive_months: int = 0


@dataclass(frozen=True)
class SegmentEntryCondition:
    segment: str = ""


Condition = (ProductMaturityCondition | BirthdayCondition | AnniversaryCondition | DormancyCondition
             | CardApplicationCondition | PayrollCondition | SegmentEntryCondition)


@dataclass(frozen=True)
class OfferAction:
    campaign: str = ""
    offer: str = ""


@dataclass(frozen=True)
class CareTaskAction:
    kind: int = 0
    title: str = ""
    # None: the default, 3 days.
    due_after: timedelta | None = None
    priority: int = 0


Action = OfferAction | CareTaskAction

# The `condition` oneof: case name -> (its value type, the event type it stands for).
CONDITIONS: dict[str, tuple[type, TriggerEventType]] = {
    "product_maturity": (ProductMaturityCondition, TriggerEventType.PRODUCT_MATURITY),
    "birthday": (BirthdayCondition, TriggerEventType.BIRTHDAY),
    "anniversary": (AnniversaryCondition, TriggerEventType.ANNIVERSARY),
    "dormancy": (DormancyCondition, TriggerEventType.DORMANCY),
    "card_application": (CardApplicationCondition, TriggerEventType.CARD_APPLICATION),
    "payroll": (PayrollCondition, TriggerEventType.PAYROLL),
    "segment_entry": (SegmentEntryCondition, TriggerEventType.SEGMENT_ENTRY),
}
# The `action` oneof: case name -> its value type.
ACTIONS: dict[str, type] = {"offer_action": OfferAction, "care_task_action": CareTaskAction}


@dataclass
class TriggerRule:
    trigger_rule_id: str
    display_name: str
    description: str = ""
    state: int = TriggerRuleState.UNSPECIFIED
    # The `condition` oneof: at most one set (exactly one once valid).
    product_maturity: ProductMaturityCondition | None = None
    birthday: BirthdayCondition | None = None
    anniversary: AnniversaryCondition | None = None
    dormancy: DormancyCondition | None = None
    card_application: CardApplicationCondition | None = None
    payroll: PayrollCondition | None = None
    segment_entry: SegmentEntryCondition | None = None
    population_segment: str = ""
    # The `action` oneof.
    offer_action: OfferAction | None = None
    care_task_action: CareTaskAction | None = None
    # None: the default, 30 days.
    cooldown: timedelta | None = None
    fire_count: int = 0
    last_fired_at: datetime | None = None
    creator: str = ""
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"triggerRules/{self.trigger_rule_id}"

    @property
    def etag(self) -> str:
        return str(self.version)

    @property
    def condition_cases(self) -> list[str]:
        return [case for case in CONDITIONS if getattr(self, case) is not None]

    @property
    def action_cases(self) -> list[str]:
        return [case for case in ACTIONS if getattr(self, case) is not None]

    @property
    def condition(self) -> Condition | None:
        cases = self.condition_cases
        return getattr(self, cases[0]) if cases else None

    @property
    def action(self) -> Action | None:
        cases = self.action_cases
        return getattr(self, cases[0]) if cases else None

    @property
    def event_type(self) -> TriggerEventType:
        cases = self.condition_cases
        return CONDITIONS[cases[0]][1] if cases else TriggerEventType.UNSPECIFIED

    @property
    def campaign_id(self) -> str:
        """The campaign of the offer action; empty for a care-task action."""
        if self.offer_action is None:
            return ""
        return self.offer_action.campaign.removeprefix("campaigns/")



# --- firing ---------------------------------------------------------------------------------


class FiringOutcome(IntEnum):
    """What one firing did (stored with it)."""

    UNSPECIFIED = 0
    # The offer action queued a dispatch (or held the customer out as control).
    DISPATCH_QUEUED = 1
    # The offer action's checks (consent, do-not-contact, caps, ...) suppressed the contact.
    SUPPRESSED = 2
    # The offer action's campaign was not RUNNING: nothing sent.
    CAMPAIGN_NOT_RUNNING = 3
    # A care-task action recorded only (firings made before care tasks were created from them).
    CARE_TASK_RECORDED = 4
    # The rule fired for this customer within its cool-down: nothing done.
    COOLED_DOWN = 5
    # The customer is in the campaign's audience already (an earlier firing): no second contact.
    ALREADY_IN_AUDIENCE = 6
    # A care-task action: an OPEN care task for the customer's relationship manager was created.
    CARE_TASK_CREATED = 7
    # A care-task action for a customer without a relationship manager (or whose manager id is
    # not a valid assignee): no task.
    NO_RELATIONSHIP_MANAGER = 8
    # A care-task action whose task the care rules refused (logged): no task.
    CARE_TASK_REFUSED = 9


@dataclass(frozen=True)
class TriggerEvent:
    """An event read from a peer's feed, as the trigger rules see it."""

    event_type: TriggerEventType
    customer_id: str
    # What makes two deliveries the same event (a replay, or a later message about the same
    # application, maturity or payroll month): a rule fires at most once per customer per key.
    key: str
    occurred_at: datetime
    segment: str = ""
    product_code: str = ""
    # Card applications: approved (True) or only submitted.
    approved: bool = False
    # Maturities: the holding's balance and maturity date.
    amount: Money | None = None
    maturity_date: date | None = None
    # Payroll: the largest salary credit of each month so far, by the month's first day.
    payroll_months: tuple[tuple[date, Money], ...] = ()
    payroll_month: date | None = None
    # Anniversaries (calendar scan): the anniversary's date and how many years it marks.
    anniversary: date | None = None
    years: int = 0
    # Dormancy (calendar scan): the customer's last own activity.
    inactive_since: datetime | None = None


@dataclass(frozen=True)
class Firing:
    trigger_rule_id: str
    customer_id: str
    event_key: str
    event_type: TriggerEventType
    occurred_at: datetime
    outcome: FiringOutcome = FiringOutcome.UNSPECIFIED
    campaign_id: str = ""
    offer_id: str = ""
    suppression_reason: int = 0
