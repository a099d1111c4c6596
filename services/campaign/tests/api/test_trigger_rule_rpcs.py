"""CampaignService trigger rule RPCs against a real PostgreSQL, through a real in-process server."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from crm.campaign.v1 import campaign_pb2, care_pb2, trigger_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, error_reason, field_violations

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
AUDITOR = bearer(Role.AUDITOR, subject="auditor-1")
CHANNEL_APP = bearer(Role.CHANNEL_APP, subject="app-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-1")
T = trigger_pb2
DAY = 86_400


def days(n: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(n * DAY))


def care_rule(**overrides: Any) -> trigger_pb2.TriggerRule:
    rule = T.TriggerRule(
        trigger_rule_id=f"birthday-{uuid.uuid4().hex[:10]}", display_name="Birthday greeting 3 days ahead",
        birthday=T.BirthdayCondition(lead_time=days(3)),
        care_task_action=T.CareTaskAction(kind=care_pb2.CARE_TASK_KIND_BIRTHDAY_GREETING, title="Birthday call"))
    for name, value in overrides.items():
        if hasattr(value, "CopyFrom"):
            getattr(rule, name).CopyFrom(value)
        else:
            setattr(rule, name, value)
    return rule


@pytest.fixture
def triggered(campaigns, new_campaign, new_offer):  # type: ignore[no-untyped-def]
    """`await triggered(**overrides)`: a draft triggered campaign and one offer of it."""
    async def create(**overrides: object) -> tuple[campaign_pb2.Campaign, campaign_pb2.Offer]:
        campaign = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(
            campaign=new_campaign(type=campaign_pb2.CAMPAIGN_TYPE_TRIGGERED, **overrides)), metadata=MARKETER)).campaign
        offer = (await campaigns.CreateOffer(pb.CreateOfferRequest(parent=campaign.name, offer=new_offer()),
                                             metadata=MARKETER)).offer
        return campaign, offer
    return create


async def create_rule(campaigns: Any, rule: trigger_pb2.TriggerRule, metadata: Any = MARKETER,
                      request_id: str = "") -> trigger_pb2.TriggerRule:
    return (await campaigns.CreateTriggerRule(pb.CreateTriggerRuleRequest(trigger_rule=rule, request_id=request_id),
                                              metadata=metadata)).trigger_rule


async def test_create_then_get_and_list_a_maturity_offer_rule(campaigns, triggered, cny) -> None:
    campaign, offer = await triggered()
    sent = T.TriggerRule(
        trigger_rule_id=f"td-maturity-{uuid.uuid4().hex[:8]}", display_name="Deposit maturity 14 days ahead",
        product_maturity=T.ProductMaturityCondition(product_codes=["TD-1Y-CNY"], min_amount=cny(50_000)),
        population_segment="segments/mass-affluent",
        offer_action=T.OfferAction(campaign=campaign.name, offer=offer.name))
    created = await create_rule(campaigns, sent)
    assert created.name == f"triggerRules/{sent.trigger_rule_id}" and created.etag
    assert created.state == T.TRIGGER_RULE_STATE_ENABLED
    assert created.event_type == T.TRIGGER_EVENT_TYPE_PRODUCT_MATURITY
    assert created.product_maturity.lead_time == days(14), "unset lead time means 14 days"
    assert created.product_maturity.min_amount == cny(50_000)
    assert created.cooldown == days(30), "unset cool-down means 30 days"
    assert created.creator == "marketer-a" and created.fire_count == 0 and not created.HasField("last_fire_time")
    assert created.offer_action == sent.offer_action and created.HasField("create_time")
    fetched = (await campaigns.GetTriggerRule(pb.GetTriggerRuleRequest(name=created.name), metadata=ANALYST))
    assert fetched.trigger_rule == created
    listed = (await campaigns.ListTriggerRules(pb.ListTriggerRulesRequest(campaign=campaign.name),
                                               metadata=AUDITOR)).trigger_rules
    assert list(listed) == [created]


async def test_every_condition_round_trips_with_its_defaults(campaigns, cny) -> None:
    conditions = {
        "birthday": T.BirthdayCondition(),
        "anniversary": T.AnniversaryCondition(lead_time=days(7), years=[1, 5, 10]),
        "dormancy": T.DormancyCondition(inactive_for=days(180)),
        "card_application": T.CardApplicationCondition(card_product_codes=["CC-GOLD"], approved_only=True),
        "payroll": T.PayrollCondition(min_monthly_amount=cny(8_000)),
        "segment_entry": T.SegmentEntryCondition(segment="segments/new-payroll"),
    }
    for case, condition in conditions.items():
        created = await create_rule(campaigns, care_rule(**{case: condition}))
        assert created.WhichOneof("condition") == case
        if case == "birthday":
            assert created.birthday.lead_time == days(0)
        elif case == "payroll":
            assert created.payroll.consecutive_months == 3 and created.payroll.min_monthly_amount == cny(8_000)
        else:
            assert getattr(created, case) == condition
        assert created.care_task_action.due_after == days(3)
        assert created.care_task_action.priority == care_pb2.CARE_TASK_PRIORITY_NORMAL


async def test_ids_are_generated_and_a_repeated_request_id_returns_the_first_rule(campaigns, count_rows) -> None:
    request_id = str(uuid.uuid4())
    first = await create_rule(campaigns, care_rule(trigger_rule_id=""), request_id=request_id)
    assert first.trigger_rule_id.startswith("trigger-")
    before = await count_rows("trigger_rule")
    again = await create_rule(campaigns, care_rule(trigger_rule_id=""), request_id=request_id)
    assert again == first and await count_rows("trigger_rule") == before


async def test_a_taken_id_is_already_exists(campaigns) -> None:
    rule = care_rule()
    await create_rule(campaigns, rule)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_rule(campaigns, rule)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error.value) == "TRIGGER_RULE_EXISTS"


BAD_RULES = [
    ({"trigger_rule_id": "9-starts-with-digit"}, "trigger_rule.trigger_rule_id"),
    ({"display_name": ""}, "trigger_rule.display_name"),
    ({"state": 9}, "trigger_rule.state"),
    ({"event_type": 42}, "trigger_rule.event_type"),
    ({"event_type": T.TRIGGER_EVENT_TYPE_DORMANCY}, "trigger_rule.event_type"),
    ({"population_segment": "mass"}, "trigger_rule.population_segment"),
    ({"cooldown": days(-1)}, "trigger_rule.cooldown"),
    ({"cooldown": days(0)}, "trigger_rule.cooldown"),
    ({"cooldown": days(366)}, "trigger_rule.cooldown"),
    ({"cooldown": duration_pb2.Duration(seconds=DAY + 1)}, "trigger_rule.cooldown"),
    ({"birthday": T.BirthdayCondition(lead_time=days(31))}, "trigger_rule.birthday.lead_time"),
    ({"product_maturity": T.ProductMaturityCondition(lead_time=days(0))}, "trigger_rule.product_maturity.lead_time"),
    ({"product_maturity": T.ProductMaturityCondition(product_codes=["TD 1Y"])},
     "trigger_rule.product_maturity.product_codes[0]"),
    ({"anniversary": T.AnniversaryCondition(years=[0])}, "trigger_rule.anniversary.years[0]"),
    ({"dormancy": T.DormancyCondition()}, "trigger_rule.dormancy.inactive_for"),
    ({"dormancy": T.DormancyCondition(inactive_for=days(29))}, "trigger_rule.dormancy.inactive_for"),
    ({"payroll": T.PayrollCondition(consecutive_months=13)}, "trigger_rule.payroll.consecutive_months"),
    ({"segment_entry": T.SegmentEntryCondition()}, "trigger_rule.segment_entry.segment"),
    ({"care_task_action": T.CareTaskAction(title="x")}, "trigger_rule.care_task_action.kind"),
    ({"care_task_action": T.CareTaskAction(kind=1)}, "trigger_rule.care_task_action.title"),
    ({"offer_action": T.OfferAction()}, "trigger_rule.offer_action.campaign"),
    ({"offer_action": T.OfferAction(campaign="campaigns/a", offer="campaigns/b/offers/c")},
     "trigger_rule.offer_action.offer"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_RULES, ids=[f for _, f in BAD_RULES])
async def test_bad_rule_field_is_invalid_argument_naming_the_rule_and_writes_nothing(
    campaigns, count_rows, overrides, field,
) -> None:
    before = (await count_rows("trigger_rule"), await count_rows("outbox_event"))
    rule = care_rule(**overrides)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_rule(campaigns, rule)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    if rule.trigger_rule_id and field != "trigger_rule.trigger_rule_id":
        assert rule.trigger_rule_id in (error.value.details() or "")
        assert error_info(error.value).metadata["trigger_rule_id"] == rule.trigger_rule_id
    assert (await count_rows("trigger_rule"), await count_rows("outbox_event")) == before


async def test_a_rule_without_a_condition_or_with_an_unknown_one_is_invalid(campaigns, count_rows) -> None:
    before = await count_rows("trigger_rule")
    rule = care_rule()
    rule.ClearField("birthday")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_rule(campaigns, rule)
    assert "trigger_rule.condition" in field_violations(error.value)
    # A condition from a newer contract (field 99) arrives as an unknown field.
    newer = care_rule()
    newer.ClearField("birthday")
    raw = newer.SerializeToString() + bytes([0x9A, 0x06, 0x00])  # field 99, length-delimited, empty
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_rule(campaigns, T.TriggerRule.FromString(raw))
    violations = field_violations(error.value)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "99" in violations["trigger_rule"]
    assert await count_rows("trigger_rule") == before


async def test_offer_action_targets_are_checked(campaigns, triggered, new_campaign, count_rows) -> None:
    campaign, _ = await triggered()
    before = await count_rows("trigger_rule")
    cases = [
        (T.OfferAction(campaign="campaigns/no-such-campaign"), grpc.StatusCode.NOT_FOUND, "CAMPAIGN_NOT_FOUND"),
        (T.OfferAction(campaign=campaign.name, offer=f"{campaign.name}/offers/no-such-offer"),
         grpc.StatusCode.NOT_FOUND, "OFFER_NOT_FOUND"),
    ]
    batch = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                            metadata=MARKETER)).campaign
    cases.append((T.OfferAction(campaign=batch.name), grpc.StatusCode.FAILED_PRECONDITION, "CAMPAIGN_NOT_TRIGGERED"))
    cancelled, _ = await triggered()
    await campaigns.CancelCampaign(pb.CancelCampaignRequest(name=cancelled.name, reason="budget cut"),
                                   metadata=MARKETER)
    cases.append((T.OfferAction(campaign=cancelled.name), grpc.StatusCode.FAILED_PRECONDITION, "CAMPAIGN_ENDED"))
    for action, code, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create_rule(campaigns, care_rule(offer_action=action))
        assert (error.value.code(), error_reason(error.value)) == (code, reason)
    assert await count_rows("trigger_rule") == before


async def test_update_by_mask_replaces_a_oneof_and_checks_the_etag(campaigns, triggered) -> None:
    created = await create_rule(campaigns, care_rule())
    disabled = (await campaigns.UpdateTriggerRule(pb.UpdateTriggerRuleRequest(
        trigger_rule=T.TriggerRule(name=created.name, etag=created.etag, state=T.TRIGGER_RULE_STATE_DISABLED),
        update_mask=field_mask_pb2.FieldMask(paths=["state"])), metadata=MARKETER)).trigger_rule
    assert disabled.state == T.TRIGGER_RULE_STATE_DISABLED and disabled.etag != created.etag
    assert disabled.birthday == created.birthday and disabled.display_name == created.display_name

    campaign, _ = await triggered()
    moved = (await campaigns.UpdateTriggerRule(pb.UpdateTriggerRuleRequest(
        trigger_rule=T.TriggerRule(name=created.name, dormancy=T.DormancyCondition(inactive_for=days(90)),
                                   offer_action=T.OfferAction(campaign=campaign.name), cooldown=days(60)),
        update_mask=field_mask_pb2.FieldMask(paths=["dormancy.inactive_for", "offer_action", "cooldown"])),
        metadata=MARKETER)).trigger_rule
    assert moved.WhichOneof("condition") == "dormancy" and moved.dormancy.inactive_for == days(90)
    assert moved.event_type == T.TRIGGER_EVENT_TYPE_DORMANCY
    assert moved.WhichOneof("action") == "offer_action" and moved.cooldown == days(60)
    listed = (await campaigns.ListTriggerRules(pb.ListTriggerRulesRequest(campaign=campaign.name),
                                               metadata=ANALYST)).trigger_rules
    assert [r.name for r in listed] == [created.name]

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.UpdateTriggerRule(pb.UpdateTriggerRuleRequest(
            trigger_rule=T.TriggerRule(name=created.name, etag=created.etag, display_name="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.ABORTED


@pytest.mark.parametrize(("rule", "paths", "field"), [
    (T.TriggerRule(cooldown=days(-3)), ["cooldown"], "trigger_rule.cooldown"),
    (T.TriggerRule(state=T.TRIGGER_RULE_STATE_UNSPECIFIED), ["state"], "trigger_rule.state"),
    (T.TriggerRule(), ["birthday.lead_time", "dormancy"], "update_mask"),
    (T.TriggerRule(), ["birthday"], "trigger_rule.condition"),
    (T.TriggerRule(), ["offer_action.offer"], "trigger_rule.offer_action.campaign"),
    (T.TriggerRule(), ["trigger_rule_id"], "update_mask"),
    (T.TriggerRule(), ["fire_count"], "update_mask"),
    (T.TriggerRule(), ["no_such_field"], "update_mask"),
    (T.TriggerRule(), [], "update_mask"),
])
async def test_a_bad_update_is_invalid_argument_and_changes_nothing(campaigns, count_rows, rule, paths, field
                                                                   ) -> None:
    created = await create_rule(campaigns, care_rule())
    events = await count_rows("outbox_event")
    rule.name = created.name
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.UpdateTriggerRule(pb.UpdateTriggerRuleRequest(
            trigger_rule=rule, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    after = (await campaigns.GetTriggerRule(pb.GetTriggerRuleRequest(name=created.name), metadata=MARKETER))
    assert after.trigger_rule == created and await count_rows("outbox_event") == events


async def test_a_rule_on_an_ended_campaign_can_still_be_disabled(campaigns, triggered) -> None:
    campaign, _ = await triggered()
    created = await create_rule(campaigns, care_rule(offer_action=T.OfferAction(campaign=campaign.name)))
    await campaigns.CancelCampaign(pb.CancelCampaignRequest(name=campaign.name, reason="budget cut"),
                                   metadata=MARKETER)
    disabled = (await campaigns.UpdateTriggerRule(pb.UpdateTriggerRuleRequest(
        trigger_rule=T.TriggerRule(name=created.name, state=T.TRIGGER_RULE_STATE_DISABLED),
        update_mask=field_mask_pb2.FieldMask(paths=["state"])), metadata=MARKETER)).trigger_rule
    assert disabled.state == T.TRIGGER_RULE_STATE_DISABLED


async def test_delete_checks_the_etag_then_removes_the_rule(campaigns) -> None:
    created = await create_rule(campaigns, care_rule())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.DeleteTriggerRule(pb.DeleteTriggerRuleRequest(name=created.name, etag="stale"),
                                          metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.ABORTED
    await campaigns.DeleteTriggerRule(pb.DeleteTriggerRuleRequest(name=created.name, etag=created.etag),
                                      metadata=MARKETER)
    for call in (campaigns.GetTriggerRule(pb.GetTriggerRuleRequest(name=created.name), metadata=MARKETER),
                 campaigns.DeleteTriggerRule(pb.DeleteTriggerRuleRequest(name=created.name), metadata=MARKETER)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert (error.value.code(), error_reason(error.value)) == (grpc.StatusCode.NOT_FOUND,
                                                                   "TRIGGER_RULE_NOT_FOUND")


async def test_list_pages_in_display_name_order_with_filters(campaigns) -> None:
    tag = uuid.uuid4().hex[:8]
    made = [await create_rule(campaigns, care_rule(display_name=f"zz list {tag} {letter}"))
            for letter in "cab"]
    dormant = await create_rule(campaigns, care_rule(display_name=f"zz list {tag} d",
                                                     dormancy=T.DormancyCondition(inactive_for=days(60)),
                                                     state=T.TRIGGER_RULE_STATE_DISABLED))
    seen: list[str] = []
    token = ""
    while True:
        page = await campaigns.ListTriggerRules(pb.ListTriggerRulesRequest(page_size=2, page_token=token),
                                                metadata=ANALYST)
        seen += [r.name for r in page.trigger_rules if f"zz list {tag}" in r.display_name]
        token = page.next_page_token
        if not token:
            break
    assert seen == [made[1].name, made[2].name, made[0].name, dormant.name]
    only = await campaigns.ListTriggerRules(pb.ListTriggerRulesRequest(
        event_type=T.TRIGGER_EVENT_TYPE_DORMANCY, state=T.TRIGGER_RULE_STATE_DISABLED), metadata=ANALYST)
    assert dormant.name in [r.name for r in only.trigger_rules]
    assert all(r.event_type == T.TRIGGER_EVENT_TYPE_DORMANCY for r in only.trigger_rules)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ListTriggerRules(pb.ListTriggerRulesRequest(page_size=2, page_token=page.next_page_token or
                                                                    "bogus", state=T.TRIGGER_RULE_STATE_ENABLED),
                                         metadata=ANALYST)
    assert "page_token" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ListTriggerRules(pb.ListTriggerRulesRequest(event_type=42, campaign="nope"), metadata=ANALYST)
    assert {"event_type", "campaign"} <= set(field_violations(error.value))


async def test_bad_names_are_invalid_argument(campaigns) -> None:
    for name in ("triggerRules/", "rules/x", "triggerRules/9x"):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await campaigns.GetTriggerRule(pb.GetTriggerRuleRequest(name=name), metadata=ANALYST)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_only_marketers_and_admins_change_rules_and_readers_read(campaigns, count_rows) -> None:
    created = await create_rule(campaigns, care_rule())
    before = await count_rows("trigger_rule")
    for caller in (ANALYST, AUDITOR, CHANNEL_APP, RM):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create_rule(campaigns, care_rule(), metadata=caller)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await campaigns.DeleteTriggerRule(pb.DeleteTriggerRuleRequest(name=created.name), metadata=caller)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for caller in (CHANNEL_APP, RM):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await campaigns.GetTriggerRule(pb.GetTriggerRuleRequest(name=created.name), metadata=caller)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ListTriggerRules(pb.ListTriggerRulesRequest())
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await count_rows("trigger_rule") == before
