"""Pure campaign rules: the state table, four eyes, submission gaps, validation. No database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import IntEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.type import dayofweek_pb2

from crm.campaign.v1 import campaign_pb2
from crm.common.v1 import product_risk_pb2
from crm_campaign import field_masks
from crm_campaign.campaigns import rules
from crm_campaign.campaigns.model import (
    Action,
    ApprovalOutcome,
    Campaign,
    CampaignState,
    CampaignType,
    Channel,
    ChannelCost,
    ChannelStrategy,
    ContactPolicy,
    ControlGroup,
    DayOfWeek,
    FrequencyCap,
    FrequencyCapScope,
    Interval,
    Money,
    QuietHours,
    TimeOfDay,
    Transition,
)
from crm_campaign.offers.model import ChannelContent, Offer, ProductRiskLevel
from crmkit.errors import FailedPrecondition, InvalidArgument
from crmkit.testing import assert_enum_mirrors

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
St = CampaignState


def campaign(**overrides: object) -> Campaign:
    values: dict[str, object] = {
        "campaign_id": "spring-renewal", "display_name": "Spring renewal", "type": CampaignType.BATCH,
        "segment": "segments/maturing", "creator": "marketer-a",
        "active_period": Interval(NOW - timedelta(days=1), NOW + timedelta(days=30)),
        "contact_policy": ContactPolicy(channels=(Channel.SMS, Channel.MOBILE_APP)),
    }
    values.update(overrides)
    return Campaign(**values)  # type: ignore[arg-type]


def offer(**overrides: object) -> Offer:
    values: dict[str, object] = {
        "campaign_id": "spring-renewal", "offer_id": "td-3y", "display_name": "3-year deposit",
        "product_code": "TD-3Y", "product_risk_level": 1, "priority": 50, "expected_value": Money("CNY", Decimal(1)),
        "contents": (ChannelContent(Channel.SMS, "sms-1"), ChannelContent(Channel.MOBILE_APP, "app-1")),
    }
    values.update(overrides)
    return Offer(**values)  # type: ignore[arg-type]


def bad_fields(candidate: Campaign) -> set[str]:
    try:
        rules.validate(candidate, reporting_currency="CNY").raise_if_any()
    except InvalidArgument as error:
        return {v.field for v in error.violations}
    return set()


# --- the state table ----------------------------------------------------------------------------

# The contract's lifecycle (campaign.proto), written out independently of rules.TRANSITIONS.
EXPECTED = {
    (Action.SUBMIT, St.DRAFT): St.PENDING_APPROVAL,
    (Action.APPROVE, St.PENDING_APPROVAL): St.APPROVED,
    (Action.REJECT, St.PENDING_APPROVAL): St.DRAFT,
    (Action.SCHEDULE, St.APPROVED): St.SCHEDULED,
    (Action.SCHEDULE, St.SCHEDULED): St.SCHEDULED,
    (Action.LAUNCH, St.APPROVED): St.RUNNING,
    (Action.LAUNCH, St.SCHEDULED): St.RUNNING,
    (Action.PAUSE, St.RUNNING): St.PAUSED,
    (Action.RESUME, St.PAUSED): St.RUNNING,
    (Action.COMPLETE, St.RUNNING): St.COMPLETED,
    (Action.COMPLETE, St.PAUSED): St.COMPLETED,
    **{(Action.CANCEL, s): St.CANCELLED for s in (St.DRAFT, St.PENDING_APPROVAL, St.APPROVED, St.SCHEDULED,
                                                   St.RUNNING, St.PAUSED)},
}
REAL_STATES = [s for s in St if s is not St.UNSPECIFIED]


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", REAL_STATES)
def test_the_state_table_is_the_contracts_lifecycle(action: Action, state: CampaignState) -> None:
    expected = EXPECTED.get((action, state))
    if expected is not None:
        assert rules.next_state(state, action) is expected
        return
    with pytest.raises(FailedPrecondition) as error:
        rules.next_state(state, action)
    target = rules.TRANSITIONS[action][1]
    assert error.value.reason == "INVALID_STATE_TRANSITION"
    assert state.name in error.value.message and target.name in error.value.message
    assert error.value.metadata == {"state": state.name, "target_state": target.name, "action": action.value}


def test_final_states_have_no_way_out() -> None:
    for state in rules.FINAL_STATES:
        assert all(state not in starts for starts, _ in rules.TRANSITIONS.values())


# --- transitions --------------------------------------------------------------------------------


def test_submit_records_the_submitter_and_clears_the_reason() -> None:
    moved, step = rules.transition(campaign(state_reason="old rejection"), Action.SUBMIT, actor="marketer-c",
                                   now=NOW, offers=[offer()])
    assert (moved.state, moved.submitter, moved.state_reason) == (St.PENDING_APPROVAL, "marketer-c", "")
    assert step == Transition(Action.SUBMIT, St.DRAFT, St.PENDING_APPROVAL, "marketer-c", "", NOW)


@pytest.mark.parametrize("reviewer", ["marketer-a", "marketer-c"])
@pytest.mark.parametrize("action", [Action.APPROVE, Action.REJECT])
def test_four_eyes_refuses_the_creator_and_the_submitter(reviewer: str, action: Action) -> None:
    pending = campaign(state=St.PENDING_APPROVAL, submitter="marketer-c")
    with pytest.raises(FailedPrecondition) as error:
        rules.transition(pending, action, actor=reviewer, now=NOW, reason="r")
    assert error.value.reason == "SELF_APPROVAL"
    _, step = rules.transition(pending, action, actor="marketer-b", now=NOW, reason="looks right")
    assert step.actor == "marketer-b" and step.comment == "looks right"


def test_reasons_stay_only_for_reject_pause_and_cancel() -> None:
    rejected, _ = rules.transition(campaign(state=St.PENDING_APPROVAL), Action.REJECT, actor="b", now=NOW,
                                   reason="  too broad ")
    assert rejected.state_reason == "too broad"
    approved, step = rules.transition(campaign(state=St.PENDING_APPROVAL), Action.APPROVE, actor="b", now=NOW,
                                      reason="fine")
    assert approved.state_reason == "" and step.comment == "fine"
    paused, _ = rules.transition(campaign(state=St.RUNNING), Action.PAUSE, actor="a", now=NOW, reason="holiday")
    resumed, _ = rules.transition(paused, Action.RESUME, actor="a", now=NOW)
    assert (paused.state_reason, resumed.state_reason) == ("holiday", "")


def test_launch_keeps_the_first_launch_time_and_closing_sets_the_close_time() -> None:
    launched, _ = rules.transition(campaign(state=St.APPROVED), Action.LAUNCH, actor="a", now=NOW)
    assert launched.launched_at == NOW
    later = NOW + timedelta(hours=5)
    paused, _ = rules.transition(launched, Action.PAUSE, actor="a", now=later)
    resumed, _ = rules.transition(paused, Action.RESUME, actor="a", now=later)
    assert resumed.launched_at == NOW and resumed.closed_at is None
    completed, _ = rules.transition(resumed, Action.COMPLETE, actor="a", now=later)
    cancelled, _ = rules.transition(campaign(), Action.CANCEL, actor="a", now=later, reason="withdrawn")
    assert completed.closed_at == later == cancelled.closed_at


def test_launch_and_resume_respect_the_active_period() -> None:
    future = campaign(state=St.APPROVED, active_period=Interval(NOW + timedelta(days=1), NOW + timedelta(days=9)))
    with pytest.raises(FailedPrecondition) as early:
        rules.transition(future, Action.LAUNCH, actor="a", now=NOW)
    assert early.value.reason == "ACTIVE_PERIOD_NOT_STARTED"
    ended = Interval(NOW - timedelta(days=9), NOW - timedelta(seconds=1))
    with pytest.raises(FailedPrecondition) as late:
        rules.transition(campaign(state=St.APPROVED, active_period=ended), Action.LAUNCH, actor="a", now=NOW)
    assert late.value.reason == "ACTIVE_PERIOD_ENDED"
    with pytest.raises(FailedPrecondition) as resume:
        rules.transition(campaign(state=St.PAUSED, active_period=ended), Action.RESUME, actor="a", now=NOW)
    assert resume.value.reason == "ACTIVE_PERIOD_ENDED"
    # Completing or pausing is still possible after the end: the clock would complete it anyway.
    rules.transition(campaign(state=St.PAUSED, active_period=ended), Action.COMPLETE, actor="a", now=NOW)
    open_ended = campaign(state=St.APPROVED, active_period=Interval())
    assert rules.transition(open_ended, Action.LAUNCH, actor="a", now=NOW)[0].state is St.RUNNING


def test_schedule_needs_a_future_time_inside_the_active_period() -> None:
    approved = campaign(state=St.APPROVED)
    moved, _ = rules.transition(approved, Action.SCHEDULE, actor="a", now=NOW, launch_at=NOW + timedelta(days=2))
    assert moved.scheduled_launch_at == NOW + timedelta(days=2)
    with pytest.raises(InvalidArgument) as outside:
        rules.transition(approved, Action.SCHEDULE, actor="a", now=NOW, launch_at=NOW + timedelta(days=31))
    assert [v.field for v in outside.value.violations] == ["launch_time"]
    for launch_at in (None, NOW, NOW - timedelta(seconds=1)):
        with pytest.raises(InvalidArgument) as bad:
            rules.check_transition_input(Action.SCHEDULE, reason="", launch_at=launch_at, now=NOW)
        assert [v.field for v in bad.value.violations] == ["launch_time"]


@pytest.mark.parametrize(("action", "reason", "field"), [
    (Action.REJECT, "", "reason"), (Action.CANCEL, " ", "reason"), (Action.PAUSE, "x" * 1001, "reason"),
    (Action.APPROVE, "x" * 1001, "comment"),
])
def test_reasons_are_required_where_the_contract_says_and_bounded(action: Action, reason: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.check_transition_input(action, reason=reason, launch_at=None, now=NOW)
    assert [v.field for v in error.value.violations] == [field]
    rules.check_transition_input(Action.PAUSE, reason="", launch_at=None, now=NOW)
    rules.check_transition_input(Action.SUBMIT, reason="", launch_at=None, now=NOW)


def test_submission_lists_every_gap() -> None:
    bare = campaign(segment="", active_period=Interval(NOW - timedelta(days=3), None))
    assert rules.submission_gaps(bare, [], now=NOW) == [
        "offers: the campaign has no offer", "segment: a batch campaign needs a target segment",
        "active_period.end_time: is required to submit"]
    ended = campaign(active_period=Interval(None, NOW))
    assert rules.submission_gaps(ended, [offer()], now=NOW) == ["active_period.end_time: has passed"]
    inbound = campaign(type=CampaignType.INBOUND, segment="")
    assert rules.submission_gaps(inbound, [offer()], now=NOW) == []


def test_submission_checks_each_offer_against_the_campaign() -> None:
    sms_only = offer(contents=(ChannelContent(Channel.MOBILE_APP, "app-1"),))
    email = offer(offer_id="mail", channels=(Channel.EMAIL,), contents=(ChannelContent(Channel.EMAIL, "m"),))
    late = offer(offer_id="late", valid_period=Interval(None, NOW + timedelta(days=40)))
    gaps = rules.submission_gaps(campaign(), [sms_only, email, late], now=NOW)
    assert gaps == [
        "campaigns/spring-renewal/offers/td-3y.contents: no content for SMS",
        "campaigns/spring-renewal/offers/mail.channels: EMAIL is not one of the campaign's channels",
        "campaigns/spring-renewal/offers/late.valid_period: must lie within the campaign's active_period",
    ]
    with pytest.raises(FailedPrecondition) as error:
        rules.transition(campaign(), Action.SUBMIT, actor="a", now=NOW, offers=[sms_only])
    assert error.value.reason == "CAMPAIGN_INCOMPLETE"
    assert "no content for SMS" in error.value.metadata["gaps"]


def test_approval_history_keeps_only_decisions_in_order() -> None:
    steps = [Transition(Action.SUBMIT, St.DRAFT, St.PENDING_APPROVAL, "a"),
             Transition(Action.REJECT, St.PENDING_APPROVAL, St.DRAFT, "b", "no", NOW),
             Transition(Action.SUBMIT, St.DRAFT, St.PENDING_APPROVAL, "a"),
             Transition(Action.APPROVE, St.PENDING_APPROVAL, St.APPROVED, "c", "", NOW)]
    history = rules.approval_history(steps)
    assert [(d.reviewer, d.outcome, d.comment) for d in history] == [
        ("b", ApprovalOutcome.REJECTED, "no"), ("c", ApprovalOutcome.APPROVED, "")]


# --- editing ------------------------------------------------------------------------------------


def test_editing_after_draft_is_limited_to_names_and_descriptions() -> None:
    rules.check_editable(campaign(), ["segment", "contact_policy.channels"])
    rules.check_editable(campaign(state=St.RUNNING), ["display_name", "description"])
    with pytest.raises(FailedPrecondition) as error:
        rules.check_editable(campaign(state=St.APPROVED), ["description", "max_contacts"])
    assert error.value.reason == "CAMPAIGN_NOT_DRAFT" and error.value.metadata["fields"] == "max_contacts"
    for state in (St.COMPLETED, St.CANCELLED):
        with pytest.raises(FailedPrecondition) as closed:
            rules.check_editable(campaign(state=state), ["description"])
        assert closed.value.reason == "CAMPAIGN_CLOSED"


def test_apply_replaces_nested_paths_and_keeps_siblings() -> None:
    current = campaign(contact_policy=ContactPolicy(channels=(Channel.SMS,), channel_strategy=2,
                                                    frequency_caps=(FrequencyCap(1, timedelta(days=7)),)))
    changes = campaign(display_name="  New   name ", contact_policy=ContactPolicy(channels=(Channel.EMAIL,)))
    merged = rules.apply(current, changes, ["contact_policy.channels", "display_name"])
    assert merged.contact_policy == dataclasses.replace(current.contact_policy, channels=(Channel.EMAIL,))
    assert merged.display_name == "New name"
    assert field_masks.apply_paths(current, changes, []) == current


@pytest.mark.parametrize("paths", [[], ["type"], ["campaign_id"], ["state"], ["contact_policy.nope"]])
def test_a_mask_naming_nothing_or_a_frozen_field_is_refused(paths: list[str]) -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.check_mask(paths)
    assert {v.field for v in error.value.violations} == {"update_mask"}


def test_only_drafts_are_deleted() -> None:
    rules.check_deletable(campaign())
    with pytest.raises(FailedPrecondition):
        rules.check_deletable(campaign(state=St.PENDING_APPROVAL))


# --- validation ---------------------------------------------------------------------------------


def test_a_valid_campaign_has_no_violations() -> None:
    assert bad_fields(campaign()) == set()
    full = campaign(
        control_group=ControlGroup(Decimal("12.5")), attribution_window=timedelta(days=180),
        fixed_cost=Money("CNY", Decimal("0")), channel_costs=(ChannelCost(Channel.SMS, Money("CNY", Decimal("0.05"))),),
        contact_policy=ContactPolicy(channels=(Channel.SMS,), quiet_hours=QuietHours(
            TimeOfDay(21), TimeOfDay(8), quiet_days=(6, 7), time_zone="Asia/Shanghai")),
    )
    assert bad_fields(full) == set()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"campaign_id": ""}, "campaign.campaign_id"),
    ({"type": 0}, "campaign.type"),
    ({"active_period": Interval(NOW, NOW)}, "campaign.active_period.end_time"),
    ({"active_period": Interval(NOW, NOW + timedelta(days=367))}, "campaign.active_period"),
    ({"contact_policy": ContactPolicy(channels=(Channel.BRANCH_COUNTER,))}, "campaign.contact_policy.channels[0]"),
    ({"contact_policy": ContactPolicy(channels=(Channel.SMS,), quiet_hours=QuietHours(None, TimeOfDay(8)))},
     "campaign.contact_policy.quiet_hours.start"),
    ({"contact_policy": ContactPolicy(channels=(Channel.SMS,), quiet_hours=QuietHours(
        TimeOfDay(21), TimeOfDay(8), quiet_days=(0,)))}, "campaign.contact_policy.quiet_hours.quiet_days[0]"),
    ({"contact_policy": ContactPolicy(channels=(Channel.SMS,), frequency_caps=(
        FrequencyCap(1, timedelta(days=366)),))}, "campaign.contact_policy.frequency_caps[0].period"),
    ({"contact_policy": ContactPolicy(channels=(Channel.SMS,), frequency_caps=(
        FrequencyCap(1, timedelta(days=1), scope=9),))}, "campaign.contact_policy.frequency_caps[0].scope"),
    ({"control_group": ControlGroup(Decimal("-1"))}, "campaign.control_group.holdout_percentage"),
    ({"control_group": ControlGroup(Decimal("NaN"))}, "campaign.control_group.holdout_percentage"),
    ({"attribution_window": timedelta(hours=23)}, "campaign.attribution_window"),
    ({"fixed_cost": Money("USD", Decimal(1))}, "campaign.fixed_cost.currency_code"),
])
def test_each_bad_field_is_named(overrides: dict[str, object], field: str) -> None:
    assert field in bad_fields(campaign(**overrides))


def test_inbound_campaigns_may_use_inbound_channels() -> None:
    inbound = campaign(type=CampaignType.INBOUND, contact_policy=ContactPolicy(channels=(Channel.BRANCH_COUNTER,
                                                                                         Channel.WEB)))
    assert bad_fields(inbound) == set()


def test_list_filters_are_checked() -> None:
    rules.validate_list_filter(states=[1, 8], type_=0, segment="", active_during=Interval())
    with pytest.raises(InvalidArgument) as error:
        rules.validate_list_filter(states=[0, 9], type_=4, segment="x", active_during=Interval(NOW, NOW))
    assert {v.field for v in error.value.violations} == {"states[0]", "states[1]", "type", "segment",
                                                         "active_during.end_time"}


def descriptions(candidate: Campaign) -> dict[str, str]:
    try:
        rules.validate(candidate, reporting_currency="CNY").raise_if_any()
    except InvalidArgument as error:
        return {v.field: v.description for v in error.violations}
    return {}


def test_unknown_enum_numbers_are_named_as_such_not_as_missing() -> None:
    found = descriptions(campaign(
        type=9, channel_costs=(ChannelCost(99, Money("CNY", Decimal(1))),),
        contact_policy=ContactPolicy(channels=(Channel.SMS, 42), frequency_caps=(
            FrequencyCap(1, timedelta(days=1), channel=77),), quiet_hours=QuietHours(
            TimeOfDay(21), TimeOfDay(8), quiet_days=(8,)))))
    assert found == {
        "campaign.type": "9 is not a known CampaignType value",
        "campaign.channel_costs[0].channel": "99 is not a known Channel value",
        "campaign.contact_policy.channels[1]": "42 is not a known Channel value",
        "campaign.contact_policy.frequency_caps[0].channel": "77 is not a known Channel value",
        "campaign.contact_policy.quiet_hours.quiet_days[0]": "8 is not a known DayOfWeek value",
    }
    assert descriptions(campaign(type=0))["campaign.type"].startswith("is required")
    assert descriptions(campaign(channel_costs=(ChannelCost(0, Money("CNY", Decimal(1))),)))[
        "campaign.channel_costs[0].channel"] == "is required"


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (CampaignType, campaign_pb2.CampaignType, "CAMPAIGN_TYPE_"),
    (CampaignState, campaign_pb2.CampaignState, "CAMPAIGN_STATE_"),
    (Channel, campaign_pb2.Channel, "CHANNEL_"),
    (ChannelStrategy, campaign_pb2.ChannelStrategy, "CHANNEL_STRATEGY_"),
    (FrequencyCapScope, campaign_pb2.FrequencyCapScope, "FREQUENCY_CAP_SCOPE_"),
    (ApprovalOutcome, campaign_pb2.ApprovalOutcome, "APPROVAL_OUTCOME_"),
    (DayOfWeek, dayofweek_pb2.DayOfWeek, ""),
    (ProductRiskLevel, product_risk_pb2.ProductRiskLevel, "PRODUCT_RISK_LEVEL_"),
])
def test_domain_enums_mirror_the_contract(domain: type[IntEnum], proto: EnumTypeWrapper, prefix: str) -> None:
    assert_enum_mirrors(domain, proto, prefix=prefix)
