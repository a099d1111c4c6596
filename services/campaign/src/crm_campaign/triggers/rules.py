"""Pure decisions about trigger rules: what a valid rule is, its defaults, what an update may name
and which campaigns an offer action may use. No I/O here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from crm_campaign import field_masks
from crm_campaign.campaigns import rules as campaign_rules
from crm_campaign.campaigns.model import Campaign, CampaignState, CampaignType, Money
from crm_campaign.offers.rules import OFFER_ID, PRODUCT_CODE
from crm_campaign.triggers.model import (
    ACTIONS,
    CONDITIONS,
    AnniversaryCondition,
    BirthdayCondition,
    CardApplicationCondition,
    CareTaskAction,
    CareTaskKind,
    CareTaskPriority,
    DormancyCondition,
    OfferAction,
    PayrollCondition,
    ProductMaturityCondition,
    SegmentEntryCondition,
    TriggerEvent,
    TriggerEventType,
    TriggerRule,
    TriggerRuleState,
)
from crmkit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from crmkit.validation import Violations

TRIGGER_RULE_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
CAMPAIGN_NAME = re.compile(f"campaigns/(?P<campaign_id>{campaign_rules.CAMPAIGN_ID.pattern})")
OFFER_NAME = re.compile(f"campaigns/(?P<campaign_id>{campaign_rules.CAMPAIGN_ID.pattern})"
                        f"/offers/(?P<offer_id>{OFFER_ID.pattern})")
MAX_PRODUCT_CODES = 100
DEFAULT_COOLDOWN = timedelta(days=30)
COOLDOWN_DAYS = (1, 365)
DEFAULT_MATURITY_LEAD_TIME = timedelta(days=14)
MATURITY_LEAD_DAYS = (1, 90)
GREETING_LEAD_DAYS = (0, 30)
DORMANCY_DAYS = (30, 730)
ANNIVERSARY_YEARS = (1, 100)
DEFAULT_CONSECUTIVE_MONTHS = 3
CONSECUTIVE_MONTHS = (1, 12)
DEFAULT_DUE_AFTER = timedelta(days=3)
DUE_AFTER_DAYS = (0, 30)

STATES = frozenset(TriggerRuleState) - {TriggerRuleState.UNSPECIFIED}
EVENT_TYPES = frozenset(TriggerEventType) - {TriggerEventType.UNSPECIFIED}
CARE_TASK_KINDS = frozenset(CareTaskKind) - {CareTaskKind.UNSPECIFIED}
CARE_TASK_PRIORITIES = frozenset(CareTaskPriority) - {CareTaskPriority.UNSPECIFIED}

# What an update may name, by proto field path. Naming a oneof case (or a path inside one)
# replaces the whole oneof.
_CASE_PATHS = {
    "product_maturity": ("product_codes", "lead_time", "min_amount"),
    "birthday": ("lead_time",),
    "anniversary": ("lead_time", "years"),
    "dormancy": ("inactive_for",),
    "card_application": ("card_product_codes", "approved_only"),
    "payroll": ("min_monthly_amount", "consecutive_months"),
    "segment_entry": ("segment",),
    "offer_action": ("campaign", "offer"),
    "care_task_action": ("kind", "title", "due_after", "priority"),
}
UPDATABLE_PATHS = frozenset(
    {"display_name", "description", "state", "population_segment", "cooldown"}
    | set(_CASE_PATHS) | {f"{case}.{field}" for case, inner in _CASE_PATHS.items() for field in inner})


def validate(rule: TriggerRule, *, prefix: str = "trigger_rule.", violations: Violations | None = None
             ) -> Violations:
    """Record every rule the trigger rule breaks, each under the field path the caller used."""
    v = violations or Violations()
    p = prefix
    if v.required(rule.trigger_rule_id, f"{p}trigger_rule_id"):
        v.pattern(rule.trigger_rule_id, f"{p}trigger_rule_id", TRIGGER_RULE_ID,
                  "must be 1 to 63 characters from a-z 0-9 -, starting with a letter")
    if v.required(rule.display_name, f"{p}display_name"):
        v.max_length(rule.display_name, f"{p}display_name", campaign_rules.MAX_DISPLAY_NAME)
        v.text(rule.display_name, f"{p}display_name")
    v.max_length(rule.description, f"{p}description", campaign_rules.MAX_DESCRIPTION)
    v.text(rule.description, f"{p}description", multiline=True)
    v.enum(rule.state, f"{p}state", STATES, "TriggerRuleState",
           required="is required: TRIGGER_RULE_STATE_ENABLED or TRIGGER_RULE_STATE_DISABLED")
    if rule.population_segment:
        v.pattern(rule.population_segment, f"{p}population_segment", campaign_rules.SEGMENT_NAME,
                  "must be a resource name like segments/{segment_id}")
    _validate_condition(rule, p, v)
    _validate_action(rule, p, v)
    _days(rule.cooldown, f"{p}cooldown", v, COOLDOWN_DAYS)
    return v


def _validate_condition(rule: TriggerRule, p: str, v: Violations) -> None:
    cases = rule.condition_cases
    if not v.check(len(cases) == 1, f"{p}condition",
                   f"is required: exactly one of {', '.join(CONDITIONS)}"):
        return
    [case] = cases
    field = f"{p}{case}"
    condition = rule.condition
    if isinstance(condition, ProductMaturityCondition):
        _product_codes(condition.product_codes, f"{field}.product_codes", v)
        _days(condition.lead_time, f"{field}.lead_time", v, MATURITY_LEAD_DAYS)
        _amount(condition.min_amount, f"{field}.min_amount", v)
    elif isinstance(condition, BirthdayCondition):
        _days(condition.lead_time, f"{field}.lead_time", v, GREETING_LEAD_DAYS)
    elif isinstance(condition, AnniversaryCondition):
        _days(condition.lead_time, f"{field}.lead_time", v, GREETING_LEAD_DAYS)
        v.check(len(set(condition.years)) == len(condition.years), f"{field}.years", "must not repeat a year")
        for index, years in enumerate(condition.years):
            v.check(ANNIVERSARY_YEARS[0] <= years <= ANNIVERSARY_YEARS[1], f"{field}.years[{index}]",
                    "must be from 1 to 100")
    elif isinstance(condition, DormancyCondition):
        _days(condition.inactive_for, f"{field}.inactive_for", v, DORMANCY_DAYS, required=True)
    elif isinstance(condition, CardApplicationCondition):
        _product_codes(condition.card_product_codes, f"{field}.card_product_codes", v)
    elif isinstance(condition, PayrollCondition):
        _amount(condition.min_monthly_amount, f"{field}.min_monthly_amount", v)
        v.check(CONSECUTIVE_MONTHS[0] <= condition.consecutive_months <= CONSECUTIVE_MONTHS[1],
                f"{field}.consecutive_months", "must be from 1 to 12 (0 means 3)")
    elif isinstance(condition, SegmentEntryCondition) and v.required(condition.segment, f"{field}.segment"):
        v.pattern(condition.segment, f"{field}.segment", campaign_rules.SEGMENT_NAME,
                  "must be a resource name like segments/{segment_id}")


def _validate_action(rule: TriggerRule, p: str, v: Violations) -> None:
    cases = rule.action_cases
    if not v.check(len(cases) == 1, f"{p}action", f"is required: exactly one of {', '.join(ACTIONS)}"):
        return
    action = rule.action
    if isinstance(action, OfferAction):
        field = f"{p}offer_action"
        if v.required(action.campaign, f"{field}.campaign") and v.pattern(
                action.campaign, f"{field}.campaign", CAMPAIGN_NAME,
                "must be a resource name like campaigns/{campaign_id}") and action.offer:
            matched = OFFER_NAME.fullmatch(action.offer)
            if v.check(matched is not None, f"{field}.offer",
                       "must be a resource name like campaigns/{campaign_id}/offers/{offer_id}"):
                assert matched is not None
                v.check(matched["campaign_id"] == rule.campaign_id, f"{field}.offer",
                        "must be an offer of offer_action.campaign")
    elif isinstance(action, CareTaskAction):
        field = f"{p}care_task_action"
        v.enum(action.kind, f"{field}.kind", CARE_TASK_KINDS, "CareTaskKind", required=True)
        if v.required(action.title, f"{field}.title"):
            v.max_length(action.title, f"{field}.title", campaign_rules.MAX_DISPLAY_NAME)
            v.text(action.title, f"{field}.title")
        _days(action.due_after, f"{field}.due_after", v, DUE_AFTER_DAYS)
        v.enum(action.priority, f"{field}.priority", CARE_TASK_PRIORITIES, "CareTaskPriority")


def _days(value: timedelta | None, field: str, v: Violations, bounds: tuple[int, int], *,
          required: bool = False) -> None:
    """A duration of whole days within `bounds` (None: unset, the default, unless `required`)."""
    low, high = bounds
    if value is None:
        v.check(not required, field, f"is required: {low} to {high} whole days")
        return
    whole = value == timedelta(days=value.days)
    v.check(whole and low <= value.days <= high, field, f"must be {low} to {high} whole days")


def _product_codes(codes: Sequence[str], field: str, v: Violations) -> None:
    v.check(len(codes) <= MAX_PRODUCT_CODES, field, f"must name at most {MAX_PRODUCT_CODES} product codes")
    v.check(len(set(codes)) == len(codes), field, "must not repeat a product code")
    for index, code in enumerate(codes):
        v.pattern(code, f"{field}[{index}]", PRODUCT_CODE, "must be 1 to 64 characters from A-Z a-z 0-9 _ -")


def _amount(money: Money | None, field: str, v: Violations) -> None:
    if money is None:
        return
    v.pattern(money.currency_code, f"{field}.currency_code", campaign_rules.CURRENCY,
              "must be an ISO 4217 code, e.g. CNY")
    v.check(money.amount >= 0, field, "must be zero or positive")


def normalise(rule: TriggerRule) -> TriggerRule:
    """The rule with its text trimmed and every unset value that has a default given it."""
    condition_defaults: dict[str, object] = {}
    if rule.product_maturity is not None and rule.product_maturity.lead_time is None:
        condition_defaults["product_maturity"] = dataclasses.replace(rule.product_maturity,
                                                                     lead_time=DEFAULT_MATURITY_LEAD_TIME)
    for case in ("birthday", "anniversary"):
        greeting = getattr(rule, case)
        if greeting is not None and greeting.lead_time is None:
            condition_defaults[case] = dataclasses.replace(greeting, lead_time=timedelta(0))
    if rule.payroll is not None and not rule.payroll.consecutive_months:
        condition_defaults["payroll"] = dataclasses.replace(rule.payroll,
                                                            consecutive_months=DEFAULT_CONSECUTIVE_MONTHS)
    care = rule.care_task_action
    if care is not None:
        care = dataclasses.replace(care, title=" ".join(care.title.split()),
                                   due_after=DEFAULT_DUE_AFTER if care.due_after is None else care.due_after,
                                   priority=care.priority or CareTaskPriority.NORMAL)
    return dataclasses.replace(
        rule, display_name=" ".join(rule.display_name.split()), description=rule.description.strip(),
        cooldown=DEFAULT_COOLDOWN if rule.cooldown is None else rule.cooldown, care_task_action=care,
        **condition_defaults)  # type: ignore[arg-type]


def for_create(rule: TriggerRule) -> TriggerRule:
    """A new rule: enabled unless it says otherwise, with its defaults."""
    return normalise(dataclasses.replace(rule, state=rule.state or TriggerRuleState.ENABLED))


def check_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, UPDATABLE_PATHS)
    heads = {path.partition(".")[0] for path in paths}
    for oneof, cases in (("condition", CONDITIONS), ("action", ACTIONS)):
        named = sorted(heads & set(cases))
        v.check(len(named) <= 1, "update_mask", f"names {' and '.join(named)}: at most one case of the {oneof} "
                                                "oneof, which it replaces whole")
    v.raise_if_any()


def apply(current: TriggerRule, changes: TriggerRule, paths: Iterable[str]) -> TriggerRule:
    """`current` with the named paths taken from `changes`. A path into a oneof case the request
    left unset reads that case's defaults; naming a case clears the other cases of its oneof."""
    paths = list(paths)
    filled: dict[str, object] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if rest and getattr(changes, head) is None:
            filled[head] = _case_type(head)()
    changes = dataclasses.replace(changes, **filled)  # type: ignore[arg-type]
    merged = field_masks.apply_paths(current, changes, paths)
    heads = {path.partition(".")[0] for path in paths}
    cleared: dict[str, None] = {}
    for oneof in (CONDITIONS, ACTIONS):
        named = heads & set(oneof)
        if named:
            cleared.update({case: None for case in oneof if case not in named})
    return normalise(dataclasses.replace(merged, **cleared))  # type: ignore[arg-type]


def _case_type(case: str) -> type:
    return CONDITIONS[case][0] if case in CONDITIONS else ACTIONS[case]


def raise_if_invalid(v: Violations, rule_id: str) -> None:
    """INVALID_ARGUMENT naming every bad field and, in its message and ErrorInfo, the rule."""
    try:
        v.raise_if_any()
    except InvalidArgument as error:
        raise invalid(error.violations, rule_id) from None


def invalid(violations: Iterable[FieldViolation], rule_id: str) -> InvalidArgument:
    """INVALID_ARGUMENT for these fields, naming the rule (its id, or "(new)" before it has one)."""
    error = InvalidArgument(violations)
    detail = error.message.removeprefix("invalid request: ")
    error.message = f"trigger rule {rule_id or '(new)'} is invalid: {detail}"
    error.args = (error.message,)
    error.metadata = {"trigger_rule_id": rule_id}
    return error


def check_offer_campaign(campaign: Campaign, *, now: datetime) -> None:
    """An offer action's campaign: a triggered campaign that has not ended."""
    if campaign.type != CampaignType.TRIGGERED:
        raise FailedPrecondition(
            f"campaign {campaign.campaign_id} is not a triggered campaign (it is {CampaignType(campaign.type).name})",
            reason="CAMPAIGN_NOT_TRIGGERED", metadata={"campaign_id": campaign.campaign_id})
    end = campaign.active_period.end_time
    if campaign.state in campaign_rules.FINAL_STATES or (end is not None and end <= now):
        raise FailedPrecondition(f"campaign {campaign.campaign_id} has ended", reason="CAMPAIGN_ENDED",
                                 metadata={"campaign_id": campaign.campaign_id, "state": campaign.state.name})


def validate_list_filter(*, event_type: int, state: int, campaign: str) -> None:
    v = Violations()
    v.enum(event_type, "event_type", EVENT_TYPES, "TriggerEventType")
    v.enum(state, "state", STATES, "TriggerRuleState")
    if campaign:
        v.pattern(campaign, "campaign", CAMPAIGN_NAME, "must be a resource name like campaigns/{campaign_id}")
    v.raise_if_any()


# ---------------------------------------------------------------------------------------------
# Firing: which enabled rules an event fires (the cool-down is the repository's conditional insert)


def matches(rule: TriggerRule, event: TriggerEvent) -> bool:
    """Whether the event is the rule's condition (population and cool-down are checked apart)."""
    if rule.state != TriggerRuleState.ENABLED or rule.event_type != event.event_type:
        return False
    condition = rule.condition
    if isinstance(condition, SegmentEntryCondition):
        return condition.segment == event.segment
    if isinstance(condition, CardApplicationCondition):
        return ((not condition.card_product_codes or event.product_code in condition.card_product_codes)
                and (event.approved or not condition.approved_only))
    if isinstance(condition, ProductMaturityCondition):
        return _maturity_matches(condition, event)
    if isinstance(condition, PayrollCondition):
        if event.payroll_month is None:
            return False
        # "Becomes" a payroll customer: the month the streak first reaches the months asked for.
        return payroll_streak(event.payroll_months, ending=event.payroll_month,
                              minimum=condition.min_monthly_amount) == condition.consecutive_months
    if isinstance(condition, AnniversaryCondition):
        if event.anniversary is None or condition.lead_time is None or event.years < 1:
            return False
        days_left = (event.anniversary - event.occurred_at.date()).days
        return 0 <= days_left <= condition.lead_time.days and (not condition.years or event.years in condition.years)
    if isinstance(condition, DormancyCondition):
        return (event.inactive_since is not None and condition.inactive_for is not None
                and event.occurred_at - event.inactive_since >= condition.inactive_for)
    return False


def _maturity_matches(condition: ProductMaturityCondition, event: TriggerEvent) -> bool:
    if event.maturity_date is None or condition.lead_time is None:
        return False
    if condition.product_codes and event.product_code not in condition.product_codes:
        return False
    if condition.min_amount is not None and not _at_least(event.amount, condition.min_amount):
        return False
    # Maturing within the lead time, or matured no longer ago than that (a late report).
    days_left = (event.maturity_date - event.occurred_at.date()).days
    return abs(days_left) <= condition.lead_time.days


def _at_least(amount: Money | None, minimum: Money) -> bool:
    return amount is not None and amount.currency_code == minimum.currency_code and amount.amount >= minimum.amount


def payroll_streak(months: Sequence[tuple[date, Money]], *, ending: date, minimum: Money | None) -> int:
    """Consecutive calendar months up to `ending` with a salary credit of at least `minimum`."""
    counted = {month for month, largest in months if minimum is None or _at_least(largest, minimum)}
    streak, month = 0, ending.replace(day=1)
    while month in counted:
        streak += 1
        month = (month - timedelta(days=1)).replace(day=1)
    return streak


def acts_on_campaign(campaign: Campaign | None) -> bool:
    """An offer action acts only while its campaign is RUNNING (triggers skip paused ones)."""
    return campaign is not None and campaign.state is CampaignState.RUNNING
