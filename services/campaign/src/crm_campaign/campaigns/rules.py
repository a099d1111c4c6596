"""Pure decisions about campaigns: what a valid campaign is, what may be edited when, and the
lifecycle as a table of allowed transitions with four-eyes approval. No I/O here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_campaign import field_masks
from crm_campaign.campaigns.model import (
    Action,
    ApprovalDecision,
    ApprovalOutcome,
    Campaign,
    CampaignState,
    CampaignType,
    Channel,
    ChannelStrategy,
    DayOfWeek,
    FrequencyCapScope,
    Interval,
    Money,
    TimeOfDay,
    Transition,
)
from crm_campaign.offers.model import Offer
from crmkit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from crmkit.validation import Violations

CAMPAIGN_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
SEGMENT_NAME = re.compile(r"segments/[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 2000
MAX_REASON = 1000
MAX_CHANNELS = 8
MAX_FREQUENCY_CAPS = 10
MAX_QUIET_DAYS = 6
MAX_CONTACTS = 10_000_000
MAX_ACTIVE_PERIOD = timedelta(days=366)
MAX_HOLDOUT = Decimal(50)
ATTRIBUTION_WINDOW = (timedelta(days=1), timedelta(days=180))
CAP_PERIOD_DAYS = (1, 365)
CAP_CONTACTS = (1, 100)
MAX_LIST_STATES = 8
DAYS_OF_WEEK = frozenset(DayOfWeek)
# What a request must name where it names one: the enums less their UNSPECIFIED 0.
CHANNELS = frozenset(Channel) - {Channel.UNSPECIFIED}
CAMPAIGN_TYPES = frozenset(CampaignType) - {CampaignType.UNSPECIFIED}

# Inbound-only channels show an offer while the customer is being served; a batch campaign
# pushes, so it may use only channels that can reach a customer by themselves.
INBOUND_ONLY = frozenset({Channel.BRANCH_COUNTER, Channel.WEB})
# Channels that send a templated message, so an offer needs content for each by submission.
MESSAGE_CHANNELS = frozenset({Channel.MOBILE_APP, Channel.WECHAT, Channel.SMS, Channel.EMAIL})

# What an update may name, by proto field path. Nested paths replace just that part.
UPDATABLE_PATHS = frozenset({
    "display_name", "description", "segment", "active_period", "active_period.start_time",
    "active_period.end_time", "contact_policy", "contact_policy.channels", "contact_policy.channel_strategy",
    "contact_policy.frequency_caps", "contact_policy.quiet_hours", "control_group",
    "control_group.holdout_percentage", "max_contacts", "attribution_window", "fixed_cost", "channel_costs",
})
# Editable until the campaign is completed or cancelled; everything else only in DRAFT, so what
# was approved is what runs.
EDITABLE_AFTER_DRAFT = frozenset({"display_name", "description"})
FINAL_STATES = frozenset({CampaignState.COMPLETED, CampaignState.CANCELLED})

# The lifecycle: for each verb, the states it may start from and the state it leads to.
TRANSITIONS: dict[Action, tuple[frozenset[CampaignState], CampaignState]] = {
    Action.SUBMIT: (frozenset({CampaignState.DRAFT}), CampaignState.PENDING_APPROVAL),
    Action.APPROVE: (frozenset({CampaignState.PENDING_APPROVAL}), CampaignState.APPROVED),
    Action.REJECT: (frozenset({CampaignState.PENDING_APPROVAL}), CampaignState.DRAFT),
    Action.SCHEDULE: (frozenset({CampaignState.APPROVED, CampaignState.SCHEDULED}), CampaignState.SCHEDULED),
    Action.LAUNCH: (frozenset({CampaignState.APPROVED, CampaignState.SCHEDULED}), CampaignState.RUNNING),
    Action.PAUSE: (frozenset({CampaignState.RUNNING}), CampaignState.PAUSED),
    Action.RESUME: (frozenset({CampaignState.PAUSED}), CampaignState.RUNNING),
    Action.COMPLETE: (frozenset({CampaignState.RUNNING, CampaignState.PAUSED}), CampaignState.COMPLETED),
    Action.CANCEL: (frozenset(CampaignState) - FINAL_STATES - {CampaignState.UNSPECIFIED}, CampaignState.CANCELLED),
}
# The request field carrying each verb's free text, and the verbs for which it is required.
REASON_FIELDS = {Action.APPROVE: "comment", Action.REJECT: "reason", Action.PAUSE: "reason", Action.CANCEL: "reason"}
REASON_REQUIRED = frozenset({Action.REJECT, Action.CANCEL})
# Verbs that leave a reason on the campaign (`state_reason`); every other transition clears it.
KEEPS_REASON = frozenset({Action.REJECT, Action.PAUSE, Action.CANCEL})
# RPC names, for idempotency keys: a key used for one verb cannot replay another.
METHODS = {action: f"{action.value.capitalize()}Campaign" for action in Action}


# ---------------------------------------------------------------------------------------------
# Validation


def validate(campaign: Campaign, *, reporting_currency: str, prefix: str = "campaign.",
             violations: Violations | None = None) -> Violations:
    """Record every rule the campaign breaks, each under the field path the caller used."""
    v = violations or Violations()
    p = prefix
    if v.required(campaign.campaign_id, f"{p}campaign_id"):
        v.pattern(campaign.campaign_id, f"{p}campaign_id", CAMPAIGN_ID,
                  "must be 1 to 63 characters from a-z 0-9 -, start with a letter and not end with -")
    if v.required(campaign.display_name, f"{p}display_name"):
        v.max_length(campaign.display_name, f"{p}display_name", MAX_DISPLAY_NAME)
        v.text(campaign.display_name, f"{p}display_name")
    v.max_length(campaign.description, f"{p}description", MAX_DESCRIPTION)
    v.text(campaign.description, f"{p}description", multiline=True)
    v.enum(campaign.type, f"{p}type", CAMPAIGN_TYPES, "CampaignType",
           required="is required: CAMPAIGN_TYPE_BATCH, CAMPAIGN_TYPE_TRIGGERED or CAMPAIGN_TYPE_INBOUND")
    if campaign.segment:
        v.pattern(campaign.segment, f"{p}segment", SEGMENT_NAME, "must be a resource name like segments/{segment_id}")
    validate_interval(campaign.active_period, f"{p}active_period", v, longest=MAX_ACTIVE_PERIOD)
    _validate_contact_policy(campaign, f"{p}contact_policy", v)
    _validate_holdout(campaign.control_group.holdout_percentage, f"{p}control_group.holdout_percentage", v)
    v.check(0 <= campaign.max_contacts <= MAX_CONTACTS, f"{p}max_contacts", "must be from 0 (no limit) to 10,000,000")
    if campaign.attribution_window is not None:
        shortest, longest = ATTRIBUTION_WINDOW
        v.check(shortest <= campaign.attribution_window <= longest, f"{p}attribution_window",
                "must be from 1 to 180 days (unset means 30 days)")
    if campaign.fixed_cost is not None:
        validate_money(campaign.fixed_cost, f"{p}fixed_cost", v, reporting_currency=reporting_currency)
    seen: set[int] = set()
    for index, cost in enumerate(campaign.channel_costs):
        field = f"{p}channel_costs[{index}]"
        if _check_channel(cost.channel, f"{field}.channel", v, required=True):
            v.check(cost.channel not in seen, f"{field}.channel", "has a cost already: at most one entry per channel")
            seen.add(cost.channel)
        if v.check(cost.cost_per_contact is not None, f"{field}.cost_per_contact", "is required"):
            assert cost.cost_per_contact is not None
            validate_money(cost.cost_per_contact, f"{field}.cost_per_contact", v,
                           reporting_currency=reporting_currency)
    return v


def _validate_contact_policy(campaign: Campaign, field: str, v: Violations) -> None:
    policy = campaign.contact_policy
    channels = policy.channels
    if v.check(1 <= len(channels) <= MAX_CHANNELS, f"{field}.channels", "is required: 1 to 8 channels"):
        v.check(len(set(channels)) == len(channels), f"{field}.channels", "must not repeat a channel")
        for index, channel in enumerate(channels):
            if _check_channel(channel, f"{field}.channels[{index}]", v, required=True) and (
                    campaign.type == CampaignType.BATCH):
                v.check(channel not in INBOUND_ONLY, f"{field}.channels[{index}]",
                        "is inbound only; a batch campaign uses outbound channels")
    v.enum(policy.channel_strategy, f"{field}.channel_strategy", tuple(ChannelStrategy), "ChannelStrategy",
           required="is not a known ChannelStrategy")
    v.check(len(policy.frequency_caps) <= MAX_FREQUENCY_CAPS, f"{field}.frequency_caps",
            "must have at most 10 caps")
    for index, cap in enumerate(policy.frequency_caps):
        cap_field = f"{field}.frequency_caps[{index}]"
        v.check(CAP_CONTACTS[0] <= cap.max_contacts <= CAP_CONTACTS[1], f"{cap_field}.max_contacts",
                "must be from 1 to 100")
        period = cap.period
        whole_days = period is not None and period % timedelta(days=1) == timedelta(0)
        v.check(period is not None and whole_days and CAP_PERIOD_DAYS[0] <= period.days <= CAP_PERIOD_DAYS[1],
                f"{cap_field}.period", "is required: 1 to 365 whole days")
        _check_channel(cap.channel, f"{cap_field}.channel", v, required=False)
        v.enum(cap.scope, f"{cap_field}.scope", tuple(FrequencyCapScope), "FrequencyCapScope",
               required="is not a known FrequencyCapScope")
    quiet = policy.quiet_hours
    if quiet is not None:
        q = f"{field}.quiet_hours"
        start_ok = _check_time_of_day(quiet.start, f"{q}.start", v)
        end_ok = _check_time_of_day(quiet.end, f"{q}.end", v)
        if start_ok and end_ok:
            v.check(quiet.start != quiet.end, f"{q}.end", "must differ from start")
        v.check(len(quiet.quiet_days) <= MAX_QUIET_DAYS, f"{q}.quiet_days", "must name at most 6 days")
        v.check(len(set(quiet.quiet_days)) == len(quiet.quiet_days), f"{q}.quiet_days", "must not repeat a day")
        for index, day in enumerate(quiet.quiet_days):
            v.enum(day, f"{q}.quiet_days[{index}]", DAYS_OF_WEEK, "DayOfWeek",
                   required="must be a day of the week, MONDAY to SUNDAY")
        if quiet.time_zone:
            v.check(is_time_zone(quiet.time_zone), f"{q}.time_zone", "must be an IANA time zone, e.g. Asia/Shanghai")


def _check_channel(channel: int, field: str, v: Violations, *, required: bool) -> bool:
    return v.enum(channel, field, CHANNELS, "Channel", required=required)


def _check_time_of_day(value: TimeOfDay | None, field: str, v: Violations) -> bool:
    if not v.check(value is not None, field, "is required"):
        return False
    assert value is not None
    return v.check(0 <= value.hours <= 23 and 0 <= value.minutes <= 59 and 0 <= value.seconds <= 59
                   and 0 <= value.nanos <= 999_999_999, field, "is not a time of day (00:00 to 23:59:59)")


def _validate_holdout(holdout: Decimal, field: str, v: Violations) -> None:
    if v.check(holdout.is_finite() and 0 <= holdout <= MAX_HOLDOUT, field, "must be from 0 to 50 percent"):
        v.check(holdout == holdout.quantize(Decimal("0.01")), field, "must have at most two decimal places")


def validate_money(money: Money, field: str, v: Violations, *, reporting_currency: str) -> None:
    v.check(money.currency_code == reporting_currency, f"{field}.currency_code",
            f"must be the reporting currency, {reporting_currency}")
    v.check(money.amount >= 0, field, "must be zero or positive")


def validate_interval(interval: Interval, field: str, v: Violations, *, longest: timedelta | None = None) -> None:
    start, end = interval.start_time, interval.end_time
    if start is None or end is None:
        return
    if v.check(start < end, f"{field}.end_time", "must be after start_time") and longest is not None:
        v.check(end - start <= longest, field, f"must be at most {longest.days} days long")


@lru_cache(maxsize=256)
def is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def normalise(campaign: Campaign) -> Campaign:
    return dataclasses.replace(campaign, display_name=" ".join(campaign.display_name.split()),
                               description=campaign.description.strip())


# ---------------------------------------------------------------------------------------------
# Updates


def check_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, UPDATABLE_PATHS)
    v.raise_if_any()


def check_editable(campaign: Campaign, paths: Iterable[str]) -> None:
    """Only a draft changes substance; names and descriptions change until the campaign ends."""
    if campaign.state in FINAL_STATES:
        raise FailedPrecondition(
            f"a {campaign.state.name} campaign cannot be changed", reason="CAMPAIGN_CLOSED",
            metadata={"state": campaign.state.name})
    frozen = sorted(p for p in paths if p not in EDITABLE_AFTER_DRAFT)
    if campaign.state is not CampaignState.DRAFT and frozen:
        raise FailedPrecondition(
            f"only display_name and description can change once a campaign leaves DRAFT (it is "
            f"{campaign.state.name}); not {', '.join(frozen)}", reason="CAMPAIGN_NOT_DRAFT",
            metadata={"state": campaign.state.name, "fields": ",".join(frozen)})


def apply(current: Campaign, changes: Campaign, paths: Iterable[str]) -> Campaign:
    return normalise(field_masks.apply_paths(current, changes, paths))


def check_deletable(campaign: Campaign) -> None:
    if campaign.state is not CampaignState.DRAFT:
        raise FailedPrecondition(
            f"only a DRAFT campaign can be deleted (it is {campaign.state.name}); cancel it instead",
            reason="CAMPAIGN_NOT_DRAFT", metadata={"state": campaign.state.name})


def validate_list_filter(*, states: Sequence[int], type_: int, segment: str, active_during: Interval) -> None:
    v = Violations()
    v.check(len(states) <= MAX_LIST_STATES, "states", "must name at most 8 states")
    for index, state in enumerate(states):
        v.check(state in tuple(CampaignState) and state != CampaignState.UNSPECIFIED, f"states[{index}]",
                "is not a known CampaignState")
    v.enum(type_, "type", tuple(CampaignType), "CampaignType", required="is not a known CampaignType")
    if segment:
        v.pattern(segment, "segment", SEGMENT_NAME, "must be a resource name like segments/{segment_id}")
    validate_interval(active_during, "active_during", v)
    v.raise_if_any()


# ---------------------------------------------------------------------------------------------
# Lifecycle


def next_state(state: CampaignState, action: Action) -> CampaignState:
    """The state `action` leads to from `state`; FAILED_PRECONDITION naming both when not allowed."""
    allowed_from, target = TRANSITIONS[action]
    if state not in allowed_from:
        starts = ", ".join(s.name for s in sorted(allowed_from))
        raise FailedPrecondition(
            f"cannot {action.value} a campaign in state {state.name}: {action.value} moves a campaign from "
            f"{starts} to {target.name}", reason="INVALID_STATE_TRANSITION",
            metadata={"state": state.name, "target_state": target.name, "action": action.value})
    return target


def check_four_eyes(campaign: Campaign, reviewer: str) -> None:
    """The reviewer must be a second person: neither the creator nor the submitter.

    FAILED_PRECONDITION, not PERMISSION_DENIED: the caller holds the role; it is this campaign's
    history (who created or submitted it) that rules them out, and another reviewer can proceed.
    """
    if reviewer in (campaign.creator, campaign.submitter):
        role = "created" if reviewer == campaign.creator else "submitted"
        raise FailedPrecondition(f"four-eyes rule: the reviewer {role} this campaign, so someone else must decide",
                                 reason="SELF_APPROVAL", metadata={"rule": "four_eyes"})


def check_transition_input(action: Action, *, reason: str, launch_at: datetime | None, now: datetime) -> None:
    """INVALID_ARGUMENT for what a verb's request itself gets wrong, before anything is read."""
    v = Violations()
    field = REASON_FIELDS.get(action)
    if field is not None:
        if action in REASON_REQUIRED:
            v.check(bool(reason.strip()), field, "is required: say why")
        v.max_length(reason, field, MAX_REASON)
        v.text(reason, field, multiline=True)
    if action is Action.SCHEDULE and v.check(launch_at is not None, "launch_time", "is required"):
        assert launch_at is not None
        v.check(launch_at > now, "launch_time", "must be in the future")
    v.raise_if_any()


def submission_gaps(campaign: Campaign, offers: Sequence[Offer], *, now: datetime) -> list[str]:
    """Everything that keeps the campaign from being ready for approval, each as `subject: gap`."""
    gaps: list[str] = []
    if not offers:
        gaps.append("offers: the campaign has no offer")
    if campaign.type == CampaignType.BATCH and not campaign.segment:
        gaps.append("segment: a batch campaign needs a target segment")
    end = campaign.active_period.end_time
    if end is None:
        gaps.append("active_period.end_time: is required to submit")
    elif end <= now:
        gaps.append("active_period.end_time: has passed")
    channels = set(campaign.contact_policy.channels)
    for offer in offers:
        used = set(offer.channels) if offer.channels else channels
        for channel in sorted(set(offer.channels) - channels):
            gaps.append(f"{offer.name}.channels: {Channel(channel).name} is not one of the campaign's channels")
        covered = {content.channel for content in offer.contents}
        for channel in sorted((used & MESSAGE_CHANNELS) - covered):
            gaps.append(f"{offer.name}.contents: no content for {Channel(channel).name}")
        if not _within(offer.valid_period, campaign.active_period):
            gaps.append(f"{offer.name}.valid_period: must lie within the campaign's active_period")
    return gaps


def _within(inner: Interval, outer: Interval) -> bool:
    starts_ok = inner.start_time is None or outer.start_time is None or inner.start_time >= outer.start_time
    ends_ok = inner.end_time is None or outer.end_time is None or inner.end_time <= outer.end_time
    return starts_ok and ends_ok


def transition(
    campaign: Campaign, action: Action, *, actor: str, now: datetime, reason: str = "",
    launch_at: datetime | None = None, offers: Sequence[Offer] = (),
) -> tuple[Campaign, Transition]:
    """The campaign after `action`, and the record of the step; raises when the step is not allowed."""
    target = next_state(campaign.state, action)
    changes: dict[str, Any] = {"state": target, "state_reason": reason.strip() if action in KEEPS_REASON else ""}
    if action is Action.SUBMIT:
        gaps = submission_gaps(campaign, offers, now=now)
        if gaps:
            raise FailedPrecondition(f"campaign is not ready for approval: {'; '.join(gaps)}",
                                     reason="CAMPAIGN_INCOMPLETE", metadata={"gaps": " | ".join(gaps)})
        changes["submitter"] = actor
    elif action in (Action.APPROVE, Action.REJECT):
        check_four_eyes(campaign, actor)
    elif action is Action.SCHEDULE:
        assert launch_at is not None, "check_transition_input requires launch_time"
        if not _contains(campaign.active_period, launch_at):
            raise InvalidArgument([FieldViolation("launch_time", "must be within the campaign's active_period")])
        changes["scheduled_launch_at"] = launch_at
    elif action is Action.LAUNCH:
        _check_running_window(campaign, now, starting=True)
        changes["launched_at"] = campaign.launched_at or now
    elif action is Action.RESUME:
        _check_running_window(campaign, now, starting=False)
    elif action in (Action.COMPLETE, Action.CANCEL):
        changes["closed_at"] = now
    moved = dataclasses.replace(campaign, **changes)
    record = Transition(action=action, from_state=campaign.state, to_state=target, actor=actor,
                        comment=reason.strip(), occurred_at=now)
    return moved, record


def _contains(period: Interval, moment: datetime) -> bool:
    return ((period.start_time is None or moment >= period.start_time)
            and (period.end_time is None or moment < period.end_time))


def _check_running_window(campaign: Campaign, now: datetime, *, starting: bool) -> None:
    period = campaign.active_period
    if starting and period.start_time is not None and now < period.start_time:
        raise FailedPrecondition("the campaign's active_period has not started yet",
                                 reason="ACTIVE_PERIOD_NOT_STARTED",
                                 metadata={"start_time": period.start_time.isoformat()})
    if period.end_time is not None and now >= period.end_time:
        raise FailedPrecondition("the campaign's active_period has ended", reason="ACTIVE_PERIOD_ENDED",
                                 metadata={"end_time": period.end_time.isoformat()})


def approval_history(transitions: Iterable[Transition]) -> tuple[ApprovalDecision, ...]:
    """Approvals and rejections, oldest first, from the recorded transitions."""
    outcomes = {Action.APPROVE: ApprovalOutcome.APPROVED, Action.REJECT: ApprovalOutcome.REJECTED}
    return tuple(ApprovalDecision(reviewer=t.actor, outcome=outcomes[t.action], comment=t.comment,
                                  decided_at=t.occurred_at)
                 for t in transitions if t.action in outcomes)
