"""CampaignService campaign RPCs (create, get, list, update, delete) against a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.type import decimal_pb2, interval_pb2, money_pb2, timeofday_pb2

from crm.campaign.v1 import campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
OTHER_MARKETER = bearer(Role.MARKETER, subject="marketer-z")
ADMIN = bearer(Role.ADMIN, subject="admin-1")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
AUDITOR = bearer(Role.AUDITOR, subject="auditor-1")
C = campaign_pb2
DOMAIN = "campaign.crm"


async def create(campaigns, campaign, metadata=MARKETER, request_id=""):  # type: ignore[no-untyped-def]
    response = await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=campaign, request_id=request_id),
                                              metadata=metadata)
    return response.campaign


async def get(campaigns, name, metadata=ANALYST):  # type: ignore[no-untyped-def]
    return (await campaigns.GetCampaign(pb.GetCampaignRequest(name=name), metadata=metadata)).campaign


async def update(campaigns, campaign, paths, metadata=MARKETER):  # type: ignore[no-untyped-def]
    return (await campaigns.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=campaign, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=metadata)).campaign


def days(n: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(n * 86400))


# --- create and get ---------------------------------------------------------------------------


async def test_create_then_get_returns_the_same_draft(campaigns, new_campaign, cny) -> None:
    quiet = C.QuietHours(start=timeofday_pb2.TimeOfDay(hours=21), end=timeofday_pb2.TimeOfDay(hours=8),
                         quiet_days=[7], time_zone="Asia/Shanghai")
    sent = new_campaign(attribution_window=days(14),
                        control_group=C.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="2.50")))
    sent.contact_policy.quiet_hours.CopyFrom(quiet)
    sent.channel_costs.add(channel=C.CHANNEL_MOBILE_APP, cost_per_contact=cny(0, 1_000_000))
    created = await create(campaigns, sent)
    fetched = await get(campaigns, created.name)
    assert fetched == created
    assert created.name == f"campaigns/{sent.campaign_id}"
    assert created.state == C.CAMPAIGN_STATE_DRAFT
    assert created.creator == "marketer-a" and created.submitter == ""
    assert created.etag and created.HasField("create_time") and created.HasField("update_time")
    assert created.type == C.CAMPAIGN_TYPE_BATCH and created.segment == sent.segment
    assert created.active_period == sent.active_period
    assert created.contact_policy == sent.contact_policy
    assert created.control_group.holdout_percentage.value == "2.5"
    assert created.max_contacts == 50_000 and created.attribution_window.seconds == 14 * 86400
    assert created.fixed_cost == cny(20_000)
    assert [(c.channel, c.cost_per_contact) for c in created.channel_costs] == [
        (C.CHANNEL_SMS, cny(0, 50_000_000)), (C.CHANNEL_MOBILE_APP, cny(0, 1_000_000))]
    assert list(created.approval_history) == [] and created.state_reason == ""


async def test_output_only_fields_in_a_create_are_ignored(campaigns, new_campaign) -> None:
    created = await create(campaigns, new_campaign(
        campaign_id="", state=C.CAMPAIGN_STATE_RUNNING, creator="someone-else", submitter="x", target_count=9))
    assert created.campaign_id.startswith("campaign-")
    assert created.state == C.CAMPAIGN_STATE_DRAFT
    assert (created.creator, created.submitter, created.target_count) == ("marketer-a", "", 0)


async def test_inbound_and_triggered_campaigns_need_no_segment(campaigns, new_campaign) -> None:
    for campaign_type in (C.CAMPAIGN_TYPE_INBOUND, C.CAMPAIGN_TYPE_TRIGGERED):
        created = await create(campaigns, new_campaign(
            type=campaign_type, segment="", contact_policy=C.ContactPolicy(
                channels=[C.CHANNEL_BRANCH_COUNTER, C.CHANNEL_WEB, C.CHANNEL_MOBILE_APP])))
        assert created.type == campaign_type and created.segment == ""


def _policy(**fields: object) -> campaign_pb2.ContactPolicy:
    return C.ContactPolicy(**fields)  # type: ignore[arg-type]


def _quiet(**fields: object) -> campaign_pb2.ContactPolicy:
    defaults: dict[str, object] = {"start": timeofday_pb2.TimeOfDay(hours=21), "end": timeofday_pb2.TimeOfDay(hours=8)}
    defaults.update(fields)
    return C.ContactPolicy(channels=[C.CHANNEL_SMS], quiet_hours=C.QuietHours(**defaults))  # type: ignore[arg-type]


def _interval(start_days: float | None, end_days: float | None) -> interval_pb2.Interval:
    now = datetime.now(UTC)
    interval = interval_pb2.Interval()
    if start_days is not None:
        interval.start_time.FromDatetime(now + timedelta(days=start_days))
    if end_days is not None:
        interval.end_time.FromDatetime(now + timedelta(days=end_days))
    return interval


BAD_FIELDS = [
    ({"campaign_id": "Upper"}, "campaign.campaign_id"),
    ({"campaign_id": "a" * 64}, "campaign.campaign_id"),
    ({"campaign_id": "trailing-"}, "campaign.campaign_id"),
    ({"display_name": "  "}, "campaign.display_name"),
    ({"display_name": "n" * 201}, "campaign.display_name"),
    ({"description": "d" * 2001}, "campaign.description"),
    ({"type": C.CAMPAIGN_TYPE_UNSPECIFIED}, "campaign.type"),
    ({"type": 9}, "campaign.type"),
    ({"segment": "maturing-deposits"}, "campaign.segment"),
    ({"segment": "segments/Bad_Id"}, "campaign.segment"),
    ({"active_period": _interval(5, 1)}, "campaign.active_period.end_time"),
    ({"active_period": _interval(0, 400)}, "campaign.active_period"),
    ({"contact_policy": _policy()}, "campaign.contact_policy.channels"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS, C.CHANNEL_SMS])}, "campaign.contact_policy.channels"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS, 42])}, "campaign.contact_policy.channels[1]"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_UNSPECIFIED])}, "campaign.contact_policy.channels[0]"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS, C.CHANNEL_WEB])}, "campaign.contact_policy.channels[1]"),
    ({"contact_policy": _policy(channels=[*range(1, 9), 1])}, "campaign.contact_policy.channels"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS], channel_strategy=5)},
     "campaign.contact_policy.channel_strategy"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS], frequency_caps=[C.FrequencyCap(max_contacts=0,
                                                                                          period=days(7))])},
     "campaign.contact_policy.frequency_caps[0].max_contacts"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS], frequency_caps=[C.FrequencyCap(max_contacts=1,
                                                                                          period=days(1.5))])},
     "campaign.contact_policy.frequency_caps[0].period"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS], frequency_caps=[C.FrequencyCap(max_contacts=1)])},
     "campaign.contact_policy.frequency_caps[0].period"),
    ({"contact_policy": _policy(channels=[C.CHANNEL_SMS], frequency_caps=[
        C.FrequencyCap(max_contacts=1, period=days(1))] * 11)}, "campaign.contact_policy.frequency_caps"),
    ({"contact_policy": _quiet(end=timeofday_pb2.TimeOfDay(hours=21))}, "campaign.contact_policy.quiet_hours.end"),
    ({"contact_policy": _quiet(start=timeofday_pb2.TimeOfDay(hours=25))},
     "campaign.contact_policy.quiet_hours.start"),
    ({"contact_policy": _quiet(time_zone="Mars/Olympus")}, "campaign.contact_policy.quiet_hours.time_zone"),
    ({"contact_policy": _quiet(quiet_days=[1, 2, 3, 4, 5, 6, 7])}, "campaign.contact_policy.quiet_hours.quiet_days"),
    ({"control_group": C.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="50.5"))},
     "campaign.control_group.holdout_percentage"),
    ({"control_group": C.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="2.555"))},
     "campaign.control_group.holdout_percentage"),
    ({"control_group": C.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="ten"))},
     "campaign.control_group.holdout_percentage"),
    ({"max_contacts": -1}, "campaign.max_contacts"),
    ({"max_contacts": 10_000_001}, "campaign.max_contacts"),
    ({"attribution_window": days(0.5)}, "campaign.attribution_window"),
    ({"attribution_window": days(181)}, "campaign.attribution_window"),
    ({"fixed_cost": money_pb2.Money(currency_code="USD", units=10)}, "campaign.fixed_cost.currency_code"),
    ({"fixed_cost": money_pb2.Money(currency_code="CNY", units=-10)}, "campaign.fixed_cost"),
    ({"fixed_cost": money_pb2.Money(currency_code="CNY", units=1, nanos=-5)}, "campaign.fixed_cost"),
    ({"channel_costs": [C.ChannelCost(channel=C.CHANNEL_SMS)]}, "campaign.channel_costs[0].cost_per_contact"),
    ({"channel_costs": [C.ChannelCost(cost_per_contact=money_pb2.Money(currency_code="CNY", units=1))]},
     "campaign.channel_costs[0].channel"),
    ({"channel_costs": [C.ChannelCost(channel=C.CHANNEL_SMS, cost_per_contact=money_pb2.Money(currency_code="CNY")),
                        C.ChannelCost(channel=C.CHANNEL_SMS, cost_per_contact=money_pb2.Money(currency_code="CNY"))]},
     "campaign.channel_costs[1].channel"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_FIELDS, ids=[f for _, f in BAD_FIELDS])
async def test_bad_field_is_invalid_argument_naming_it_and_writes_nothing(
    campaigns, new_campaign, count_rows, overrides, field,
) -> None:
    before = (await count_rows("campaign"), await count_rows("outbox_event"), await count_rows("idempotency_key"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(campaigns, new_campaign(**overrides), request_id=str(uuid.uuid4()))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    after = (await count_rows("campaign"), await count_rows("outbox_event"), await count_rows("idempotency_key"))
    assert after == before


async def test_every_bad_field_is_named_at_once(campaigns, new_campaign) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(campaigns, new_campaign(display_name="", type=C.CAMPAIGN_TYPE_UNSPECIFIED, max_contacts=-5,
                                             segment="nope", contact_policy=_policy()))
    assert {"campaign.display_name", "campaign.type", "campaign.max_contacts", "campaign.segment",
            "campaign.contact_policy.channels"} <= set(field_violations(error.value))


async def test_a_taken_id_is_already_exists(campaigns, new_campaign) -> None:
    sent = new_campaign()
    await create(campaigns, sent)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(campaigns, sent, metadata=OTHER_MARKETER)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error.value, domain=DOMAIN) == "CAMPAIGN_EXISTS"
    assert (await get(campaigns, f"campaigns/{sent.campaign_id}")).creator == "marketer-a"


async def test_retry_with_the_same_request_id_returns_the_first_campaign(campaigns, new_campaign, count_rows) -> None:
    request_id, campaign = str(uuid.uuid4()), new_campaign(campaign_id="")  # a retry resends the same body
    first = await create(campaigns, campaign, request_id=request_id)
    before = await count_rows("campaign")
    again = await create(campaigns, campaign, request_id=request_id)
    assert again == first and await count_rows("campaign") == before
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(campaigns, new_campaign(), request_id="not-a-uuid")
    assert "request_id" in field_violations(error.value)


async def test_a_reused_request_id_with_another_body_is_refused_and_creates_nothing(
        campaigns, new_campaign, count_rows) -> None:
    request_id = str(uuid.uuid4())
    first = await create(campaigns, new_campaign(campaign_id="", display_name="Spring renewal"), request_id=request_id)
    before = await count_rows("campaign")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(campaigns, new_campaign(campaign_id="", display_name="Autumn renewal"), request_id=request_id)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error.value, domain=DOMAIN) == "REQUEST_ID_REUSED"
    assert "request_id" in field_violations(error.value)
    assert await count_rows("campaign") == before
    assert first.display_name == "Spring renewal"


async def test_unknown_campaign_is_not_found_and_a_bad_name_invalid(campaigns) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(campaigns, "campaigns/no-such-campaign")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value, domain=DOMAIN) == "CAMPAIGN_NOT_FOUND"
    for name in ["", "campaigns/", "segments/x", "campaigns/a/offers/b", "campaigns/Not A Valid Id"]:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await get(campaigns, name)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "name" in field_violations(bad.value)


# --- auth ---------------------------------------------------------------------------------------


async def test_calls_without_a_valid_token_are_unauthenticated(campaigns) -> None:
    for metadata in [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await campaigns.GetCampaign(pb.GetCampaignRequest(name="campaigns/x"), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_role_not_allowed_is_permission_denied_and_writes_nothing(campaigns, new_campaign, count_rows) -> None:
    before = await count_rows("campaign")
    for metadata in (ANALYST, AUDITOR, bearer(Role.CHANNEL_APP), bearer(Role.RELATIONSHIP_MANAGER)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create(campaigns, new_campaign(), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(error.value, domain=DOMAIN) == "ROLE_NOT_ALLOWED"
    assert await count_rows("campaign") == before
    with pytest.raises(grpc.aio.AioRpcError) as read:
        await get(campaigns, "campaigns/x", metadata=bearer(Role.CHANNEL_APP))
    assert read.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_analysts_and_auditors_read(campaigns, new_campaign) -> None:
    created = await create(campaigns, new_campaign())
    for metadata in (ANALYST, AUDITOR, ADMIN):
        assert (await get(campaigns, created.name, metadata=metadata)).name == created.name


# --- list ---------------------------------------------------------------------------------------


async def test_list_pages_most_recently_updated_first(campaigns, new_campaign) -> None:
    segment = f"segments/list-{uuid.uuid4().hex[:8]}"
    made = [await create(campaigns, new_campaign(segment=segment)) for _ in range(5)]
    touched = await update(campaigns, C.Campaign(name=made[1].name, description="touched"), ["description"])
    seen, token = [], ""
    while True:
        page = await campaigns.ListCampaigns(pb.ListCampaignsRequest(segment=segment, page_size=2, page_token=token),
                                             metadata=ANALYST)
        assert len(page.campaigns) <= 2
        seen += [c.campaign_id for c in page.campaigns]
        token = page.next_page_token
        if not token:
            break
    expected = [touched.campaign_id] + [c.campaign_id for c in reversed(made) if c.campaign_id != touched.campaign_id]
    assert seen == expected


async def test_list_filters_by_state_type_creator_and_period(campaigns, new_campaign, active_period) -> None:
    segment = f"segments/filter-{uuid.uuid4().hex[:8]}"
    soon = await create(campaigns, new_campaign(
        segment=segment, active_period=active_period(start=timedelta(days=40), end=timedelta(days=60))))
    now = await create(campaigns, new_campaign(segment=segment), metadata=OTHER_MARKETER)
    inbound = await create(campaigns, new_campaign(segment=segment, type=C.CAMPAIGN_TYPE_INBOUND))
    cancelled = await create(campaigns, new_campaign(segment=segment))
    await campaigns.CancelCampaign(pb.CancelCampaignRequest(name=cancelled.name, reason="duplicate"),
                                   metadata=MARKETER)

    async def listed(**filters: object) -> set[str]:
        page = await campaigns.ListCampaigns(pb.ListCampaignsRequest(segment=segment, **filters),  # type: ignore[arg-type]
                                             metadata=ANALYST)
        return {c.campaign_id for c in page.campaigns}

    assert await listed() == {c.campaign_id for c in (soon, now, inbound, cancelled)}
    assert await listed(states=[C.CAMPAIGN_STATE_CANCELLED]) == {cancelled.campaign_id}
    assert await listed(states=[C.CAMPAIGN_STATE_DRAFT], type=C.CAMPAIGN_TYPE_INBOUND) == {inbound.campaign_id}
    assert await listed(creator="marketer-z") == {now.campaign_id}
    assert await listed(active_during=_interval(45, 50)) == {soon.campaign_id}
    assert soon.campaign_id not in await listed(active_during=_interval(None, 1))


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"states": [99]}, "states[0]"),
    ({"states": [C.CAMPAIGN_STATE_UNSPECIFIED]}, "states[0]"),
    ({"states": [1, 2, 3, 4, 5, 6, 7, 8, 1]}, "states"),
    ({"type": 7}, "type"),
    ({"segment": "not-a-segment"}, "segment"),
    ({"active_during": _interval(3, 1)}, "active_during.end_time"),
    ({"page_size": -1}, "page_size"),
    ({"page_token": "forged"}, "page_token"),
])
async def test_bad_list_filters_are_invalid_argument(campaigns, request_fields, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ListCampaigns(pb.ListCampaignsRequest(**request_fields), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_a_page_token_only_works_with_its_own_filter(campaigns, new_campaign) -> None:
    segment = f"segments/token-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        await create(campaigns, new_campaign(segment=segment))
    page = await campaigns.ListCampaigns(pb.ListCampaignsRequest(segment=segment, page_size=1), metadata=ANALYST)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ListCampaigns(pb.ListCampaignsRequest(segment=segment, page_size=1, creator="x",
                                                              page_token=page.next_page_token), metadata=ANALYST)
    assert "page_token" in field_violations(error.value)


# --- update -------------------------------------------------------------------------------------


async def test_update_changes_masked_fields_only_and_checks_the_etag(campaigns, new_campaign) -> None:
    created = await create(campaigns, new_campaign())
    changed = C.Campaign(name=created.name, etag=created.etag, max_contacts=10_000, display_name="ignored")
    updated = await update(campaigns, changed, ["max_contacts"])
    assert updated.max_contacts == 10_000 and updated.display_name == created.display_name
    assert updated.etag != created.etag
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(campaigns, changed, ["max_contacts"])
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert error_reason(error.value, domain=DOMAIN) == "ETAG_MISMATCH"
    assert (await get(campaigns, created.name)).etag == updated.etag


async def test_update_of_a_nested_path_keeps_its_siblings(campaigns, new_campaign) -> None:
    created = await create(campaigns, new_campaign())
    updated = await update(campaigns, C.Campaign(
        name=created.name, contact_policy=C.ContactPolicy(channels=[C.CHANNEL_EMAIL])), ["contact_policy.channels"])
    assert list(updated.contact_policy.channels) == [C.CHANNEL_EMAIL]
    assert updated.contact_policy.frequency_caps == created.contact_policy.frequency_caps
    assert updated.contact_policy.channel_strategy == created.contact_policy.channel_strategy
    cleared = await update(campaigns, C.Campaign(name=created.name), ["fixed_cost", "control_group"])
    assert not cleared.HasField("fixed_cost") and not cleared.control_group.holdout_percentage.value


@pytest.mark.parametrize(("changes", "paths", "field"), [
    ({}, [], "update_mask"),
    ({"campaign_id": "other"}, ["campaign_id"], "update_mask"),
    ({"type": C.CAMPAIGN_TYPE_INBOUND}, ["type"], "update_mask"),
    ({"state": C.CAMPAIGN_STATE_RUNNING}, ["state"], "update_mask"),
    ({"creator": "me"}, ["creator"], "update_mask"),
    ({"display_name": ""}, ["display_name"], "campaign.display_name"),
    ({"contact_policy": C.ContactPolicy(channels=[C.CHANNEL_WEB])}, ["contact_policy.channels"],
     "campaign.contact_policy.channels[0]"),
    ({"max_contacts": -1}, ["max_contacts"], "campaign.max_contacts"),
])
async def test_bad_update_is_invalid_argument_and_changes_nothing(
    campaigns, new_campaign, count_rows, changes, paths, field,
) -> None:
    created = await create(campaigns, new_campaign())
    events = await count_rows("outbox_event")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(campaigns, C.Campaign(name=created.name, **changes), paths)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await get(campaigns, created.name) == created
    assert await count_rows("outbox_event") == events


async def test_update_of_an_unknown_campaign_is_not_found(campaigns) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(campaigns, C.Campaign(name="campaigns/no-such-campaign", description="x"), ["description"])
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


# --- delete -------------------------------------------------------------------------------------


async def test_delete_checks_the_etag_then_removes_the_draft_and_its_offers(
    campaigns, new_campaign, new_offer, count_rows,
) -> None:
    created = await create(campaigns, new_campaign())
    await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=new_offer()), metadata=MARKETER)
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await campaigns.DeleteCampaign(pb.DeleteCampaignRequest(name=created.name, etag="999"), metadata=MARKETER)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    offers = await count_rows("offer")
    await campaigns.DeleteCampaign(pb.DeleteCampaignRequest(name=created.name, etag=created.etag), metadata=MARKETER)
    assert await count_rows("offer") == offers - 1
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await get(campaigns, created.name)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await campaigns.DeleteCampaign(pb.DeleteCampaignRequest(name=created.name), metadata=MARKETER)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


async def test_changes_are_written_to_the_outbox_with_the_campaign(campaigns, new_campaign, campaign_service) -> None:
    import sqlalchemy as sa

    created = await create(campaigns, new_campaign())
    await update(campaigns, C.Campaign(name=created.name, description="v2"), ["description"])
    await campaigns.DeleteCampaign(pb.DeleteCampaignRequest(name=created.name), metadata=MARKETER)
    _, runtime = campaign_service
    async with runtime.db.engine.connect() as connection:
        rows = (await connection.execute(sa.text(
            "SELECT resource_type, change_type, actor FROM outbox_event WHERE resource_name = :name "
            'ORDER BY "cursor"'), {"name": created.name})).all()
    assert [tuple(r) for r in rows] == [("crm.campaign.v1.Campaign", 1, "marketer-a"),
                                        ("crm.campaign.v1.Campaign", 2, "marketer-a"),
                                        ("crm.campaign.v1.Campaign", 3, "marketer-a")]
