"""Pure trigger rule rules: validation, defaults, update masks over oneofs, offer-action campaigns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crm_campaign.campaigns.model import Campaign, CampaignState, CampaignType, Interval, Money
from crm_campaign.triggers import rules
from crm_campaign.triggers.model import (
    BirthdayCondition,
    CardApplicationCondition,
    CareTaskAction,
    DormancyCondition,
    OfferAction,
    ProductMaturityCondition,
    SegmentEntryCondition,
    TriggerEvent,
    TriggerEventType,
    TriggerRule,
    TriggerRuleState,
)
from crmkit.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def rule(**overrides: object) -> TriggerRule:
    values: dict[str, object] = {
        "trigger_rule_id": "birthday-3d", "display_name": "Birthday", "state": TriggerRuleState.ENABLED,
        "birthday": BirthdayCondition(timedelta(days=3)), "care_task_action": CareTaskAction(3, "Birthday call"),
    }
    values.update(overrides)
    return rules.normalise(TriggerRule(**values))  # type: ignore[arg-type]


def bad_fields(candidate: TriggerRule) -> set[str]:
    try:
        rules.raise_if_invalid(rules.validate(candidate), candidate.trigger_rule_id)
    except InvalidArgument as error:
        assert candidate.trigger_rule_id in error.message
        return {v.field for v in error.violations}
    return set()


def test_a_valid_rule_has_no_violations_and_gets_its_defaults() -> None:
    assert bad_fields(rule()) == set()
    made = rules.for_create(TriggerRule(trigger_rule_id="m", display_name=" Maturity  soon ",
                                        product_maturity=ProductMaturityCondition(),
                                        care_task_action=CareTaskAction(2, "Call")))
    assert made.state is TriggerRuleState.ENABLED and made.display_name == "Maturity soon"
    assert made.product_maturity == ProductMaturityCondition(lead_time=timedelta(days=14))
    assert made.cooldown == timedelta(days=30) and made.care_task_action is not None
    assert made.care_task_action.due_after == timedelta(days=3) and made.care_task_action.priority == 2
    assert made.event_type is TriggerEventType.PRODUCT_MATURITY


@pytest.mark.parametrize(("overrides", "field"), [
    ({"cooldown": timedelta(days=-1)}, "trigger_rule.cooldown"),
    ({"cooldown": timedelta(days=1, hours=1)}, "trigger_rule.cooldown"),
    ({"birthday": None}, "trigger_rule.condition"),
    ({"dormancy": DormancyCondition(timedelta(days=60))}, "trigger_rule.condition"),
    ({"care_task_action": None}, "trigger_rule.action"),
    ({"offer_action": OfferAction("campaigns/x")}, "trigger_rule.action"),
    ({"birthday": None, "dormancy": DormancyCondition(timedelta(days=800))}, "trigger_rule.dormancy.inactive_for"),
])
def test_each_bad_field_is_named(overrides: dict[str, object], field: str) -> None:
    assert field in bad_fields(rule(**overrides))


def test_an_update_naming_a_case_replaces_the_whole_oneof() -> None:
    current = rule()
    changes = TriggerRule(trigger_rule_id="birthday-3d", display_name="",
                          dormancy=DormancyCondition(timedelta(days=90)))
    merged = rules.apply(current, changes, ["dormancy"])
    assert (merged.birthday, merged.dormancy) == (None, DormancyCondition(timedelta(days=90)))
    # A path into a case the request left unset reads that case's defaults.
    merged = rules.apply(current, changes, ["product_maturity.product_codes"])
    assert merged.product_maturity == ProductMaturityCondition(lead_time=timedelta(days=14))
    assert merged.birthday is None and merged.dormancy is None
    with pytest.raises(InvalidArgument):
        rules.check_mask(["birthday", "dormancy.inactive_for"])
    with pytest.raises(InvalidArgument):
        rules.check_mask(["fire_count"])


def test_offer_actions_need_a_triggered_campaign_that_has_not_ended() -> None:
    triggered = Campaign(campaign_id="t", display_name="t", type=CampaignType.TRIGGERED,
                         active_period=Interval(NOW - timedelta(days=1), NOW + timedelta(days=1)))
    rules.check_offer_campaign(triggered, now=NOW)
    for campaign, reason in [
        (Campaign(campaign_id="b", display_name="b", type=CampaignType.BATCH), "CAMPAIGN_NOT_TRIGGERED"),
        (Campaign(campaign_id="c", display_name="c", type=CampaignType.TRIGGERED, state=CampaignState.COMPLETED),
         "CAMPAIGN_ENDED"),
    ]:
        with pytest.raises(FailedPrecondition) as error:
            rules.check_offer_campaign(campaign, now=NOW)
        assert error.value.reason == reason
    with pytest.raises(FailedPrecondition):
        rules.check_offer_campaign(triggered, now=NOW + timedelta(days=2))


def event(event_type: TriggerEventType, **fields: object) -> TriggerEvent:
    return TriggerEvent(event_type, "c-1", key="k", occurred_at=NOW, **fields)  # type: ignore[arg-type]


def test_matches_reads_each_condition() -> None:
    entry = rule(birthday=None, segment_entry=SegmentEntryCondition("segments/vip"))
    assert rules.matches(entry, event(TriggerEventType.SEGMENT_ENTRY, segment="segments/vip"))
    assert not rules.matches(entry, event(TriggerEventType.SEGMENT_ENTRY, segment="segments/other"))
    assert not rules.matches(rule(birthday=None, segment_entry=SegmentEntryCondition("segments/vip"),
                                  state=TriggerRuleState.DISABLED),
                             event(TriggerEventType.SEGMENT_ENTRY, segment="segments/vip"))
    card = rule(birthday=None, card_application=CardApplicationCondition(("CC-1",), approved_only=True))
    assert not rules.matches(card, event(TriggerEventType.CARD_APPLICATION, product_code="CC-1"))
    assert rules.matches(card, event(TriggerEventType.CARD_APPLICATION, product_code="CC-1", approved=True))
    maturity = rule(birthday=None, product_maturity=ProductMaturityCondition(
        lead_time=timedelta(days=14), min_amount=Money("CNY", Decimal(100))))
    soon = event(TriggerEventType.PRODUCT_MATURITY, maturity_date=NOW.date() + timedelta(days=14),
                 amount=Money("CNY", Decimal(100)))
    assert rules.matches(maturity, soon)
    assert not rules.matches(maturity, dataclasses.replace(soon, amount=Money("USD", Decimal(1000))))
    assert not rules.matches(maturity, dataclasses.replace(soon, maturity_date=NOW.date() + timedelta(days=15)))


def test_the_payroll_streak_counts_consecutive_months_at_the_minimum() -> None:
    cny = Money("CNY", Decimal(5000))
    months = ((date(2026, 1, 1), cny), (date(2026, 2, 1), Money("CNY", Decimal(10))), (date(2026, 3, 1), cny),
              (date(2026, 4, 1), cny))
    assert rules.payroll_streak(months, ending=date(2026, 4, 20), minimum=cny) == 2
    assert rules.payroll_streak(months, ending=date(2026, 4, 20), minimum=None) == 4
    assert rules.payroll_streak(months, ending=date(2026, 5, 1), minimum=None) == 0
