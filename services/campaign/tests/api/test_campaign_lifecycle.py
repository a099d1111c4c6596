"""The campaign lifecycle through CampaignService: transitions, four eyes, refusals, retries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from crm.campaign.v1 import campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, field_violations
from crmkit.values import timestamp

CREATOR = bearer(Role.MARKETER, subject="marketer-a")
APPROVER = bearer(Role.MARKETER, subject="marketer-b")
SUBMITTER = bearer(Role.MARKETER, subject="marketer-c")
ADMIN = bearer(Role.ADMIN, subject="admin-1")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
DOMAIN = "campaign.crm"

S = campaign_pb2
ALL_STATES = [S.CAMPAIGN_STATE_DRAFT, S.CAMPAIGN_STATE_PENDING_APPROVAL, S.CAMPAIGN_STATE_APPROVED,
              S.CAMPAIGN_STATE_SCHEDULED, S.CAMPAIGN_STATE_RUNNING, S.CAMPAIGN_STATE_PAUSED,
              S.CAMPAIGN_STATE_COMPLETED, S.CAMPAIGN_STATE_CANCELLED]
# The contract's lifecycle (campaign.proto), written out independently of the service's table.
ALLOWED = {
    "Submit": ({S.CAMPAIGN_STATE_DRAFT}, S.CAMPAIGN_STATE_PENDING_APPROVAL),
    "Approve": ({S.CAMPAIGN_STATE_PENDING_APPROVAL}, S.CAMPAIGN_STATE_APPROVED),
    "Reject": ({S.CAMPAIGN_STATE_PENDING_APPROVAL}, S.CAMPAIGN_STATE_DRAFT),
    "Schedule": ({S.CAMPAIGN_STATE_APPROVED, S.CAMPAIGN_STATE_SCHEDULED}, S.CAMPAIGN_STATE_SCHEDULED),
    "Launch": ({S.CAMPAIGN_STATE_APPROVED, S.CAMPAIGN_STATE_SCHEDULED}, S.CAMPAIGN_STATE_RUNNING),
    "Pause": ({S.CAMPAIGN_STATE_RUNNING}, S.CAMPAIGN_STATE_PAUSED),
    "Resume": ({S.CAMPAIGN_STATE_PAUSED}, S.CAMPAIGN_STATE_RUNNING),
    "Complete": ({S.CAMPAIGN_STATE_RUNNING, S.CAMPAIGN_STATE_PAUSED}, S.CAMPAIGN_STATE_COMPLETED),
    "Cancel": (set(ALL_STATES) - {S.CAMPAIGN_STATE_COMPLETED, S.CAMPAIGN_STATE_CANCELLED},
               S.CAMPAIGN_STATE_CANCELLED),
}
REFUSED = [(action, state) for action, (starts, _) in ALLOWED.items() for state in ALL_STATES if state not in starts]


def in_a_day() -> timestamp_pb2.Timestamp:
    return timestamp(datetime.now(UTC) + timedelta(days=1))


def default_fields(action: str) -> dict[str, Any]:
    """Request fields that make `action` valid apart from the campaign's state."""
    if action in ("Reject", "Cancel"):
        return {"reason": f"{action.lower()}ed in a test"}
    if action == "Schedule":
        return {"launch_time": in_a_day()}
    return {}


async def act(campaigns, action: str, name: str, metadata=CREATOR, **fields: Any):  # type: ignore[no-untyped-def]
    """Call `<action>Campaign` on `name` and return the campaign it answers with."""
    request_type = getattr(pb, f"{action}CampaignRequest")
    merged = {**default_fields(action), **fields}
    response = await getattr(campaigns, f"{action}Campaign")(request_type(name=name, **merged), metadata=metadata)
    return response.campaign


# Who takes each step on the way to a state: the creator does everything but approve.
PATHS = {
    S.CAMPAIGN_STATE_DRAFT: [],
    S.CAMPAIGN_STATE_PENDING_APPROVAL: [("Submit", CREATOR)],
    S.CAMPAIGN_STATE_APPROVED: [("Submit", CREATOR), ("Approve", APPROVER)],
    S.CAMPAIGN_STATE_SCHEDULED: [("Submit", CREATOR), ("Approve", APPROVER), ("Schedule", CREATOR)],
    S.CAMPAIGN_STATE_RUNNING: [("Submit", CREATOR), ("Approve", APPROVER), ("Launch", CREATOR)],
    S.CAMPAIGN_STATE_PAUSED: [("Submit", CREATOR), ("Approve", APPROVER), ("Launch", CREATOR), ("Pause", CREATOR)],
    S.CAMPAIGN_STATE_COMPLETED: [("Submit", CREATOR), ("Approve", APPROVER), ("Launch", CREATOR),
                                 ("Complete", CREATOR)],
    S.CAMPAIGN_STATE_CANCELLED: [("Cancel", CREATOR)],
}


@pytest.fixture
def ready_campaign(campaigns, new_campaign, new_offer):  # type: ignore[no-untyped-def]
    """`await ready_campaign(**overrides)`: a complete draft (with one offer) created by marketer-a."""
    async def create(**overrides: Any) -> campaign_pb2.Campaign:
        created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign(**overrides)),
                                                  metadata=CREATOR)).campaign
        await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=new_offer()), metadata=CREATOR)
        return created

    return create


@pytest.fixture
def campaign_in(campaigns, ready_campaign):  # type: ignore[no-untyped-def]
    """`await campaign_in(state)`: a campaign driven through the lifecycle to `state`."""
    async def drive(state: int) -> campaign_pb2.Campaign:
        campaign = await ready_campaign()
        for action, metadata in PATHS[state]:
            campaign = await act(campaigns, action, campaign.name, metadata=metadata)
        assert campaign.state == state
        return campaign

    return drive


async def get(campaigns, name):  # type: ignore[no-untyped-def]
    return (await campaigns.GetCampaign(pb.GetCampaignRequest(name=name), metadata=ANALYST)).campaign


# --- the happy path -----------------------------------------------------------------------------


async def test_full_lifecycle_from_draft_to_completed(campaigns, ready_campaign, count_rows) -> None:
    events_before = await count_rows("outbox_event")
    created = await ready_campaign()
    assert created.state == S.CAMPAIGN_STATE_DRAFT and created.creator == "marketer-a"

    submitted = await act(campaigns, "Submit", created.name, etag=created.etag)
    assert submitted.state == S.CAMPAIGN_STATE_PENDING_APPROVAL
    assert submitted.submitter == "marketer-a"

    approved = await act(campaigns, "Approve", created.name, metadata=APPROVER, etag=submitted.etag,
                         comment="Rates checked with treasury.")
    assert approved.state == S.CAMPAIGN_STATE_APPROVED
    [decision] = approved.approval_history
    assert (decision.reviewer, decision.outcome, decision.comment) == (
        "marketer-b", S.APPROVAL_OUTCOME_APPROVED, "Rates checked with treasury.")
    assert decision.HasField("decide_time")

    launch_at = in_a_day()
    scheduled = await act(campaigns, "Schedule", created.name, launch_time=launch_at)
    assert scheduled.state == S.CAMPAIGN_STATE_SCHEDULED
    assert scheduled.scheduled_launch_time.seconds == launch_at.seconds
    rescheduled = await act(campaigns, "Schedule", created.name, launch_time=in_a_day())
    assert rescheduled.state == S.CAMPAIGN_STATE_SCHEDULED

    launched = await act(campaigns, "Launch", created.name)
    assert launched.state == S.CAMPAIGN_STATE_RUNNING and launched.HasField("launch_time")

    paused = await act(campaigns, "Pause", created.name, reason="Branch systems upgrade this weekend.")
    assert paused.state == S.CAMPAIGN_STATE_PAUSED
    assert paused.state_reason == "Branch systems upgrade this weekend."

    resumed = await act(campaigns, "Resume", created.name)
    assert resumed.state == S.CAMPAIGN_STATE_RUNNING and resumed.state_reason == ""
    assert resumed.launch_time == launched.launch_time

    completed = await act(campaigns, "Complete", created.name)
    assert completed.state == S.CAMPAIGN_STATE_COMPLETED and completed.HasField("close_time")
    assert list(completed.approval_history) == list(approved.approval_history)
    assert await get(campaigns, created.name) == completed
    # Create, one offer, and eight transitions: each change published once, in the same transaction.
    assert await count_rows("outbox_event") - events_before == 10


async def test_every_transition_is_recorded(campaigns, campaign_in, campaign_service) -> None:
    import sqlalchemy as sa

    campaign = await campaign_in(S.CAMPAIGN_STATE_PAUSED)
    _, runtime = campaign_service
    async with runtime.db.engine.connect() as connection:
        rows = (await connection.execute(sa.text(
            "SELECT action, from_state, to_state, actor FROM campaign_transition WHERE campaign_id = :id "
            "ORDER BY campaign_transition_id"), {"id": campaign.campaign_id})).all()
    assert [tuple(r) for r in rows] == [
        ("submit", 1, 2, "marketer-a"), ("approve", 2, 3, "marketer-b"), ("launch", 3, 5, "marketer-a"),
        ("pause", 5, 6, "marketer-a")]


async def test_rejection_returns_the_campaign_to_draft_for_another_round(campaigns, ready_campaign) -> None:
    created = await ready_campaign()
    await act(campaigns, "Submit", created.name)
    rejected = await act(campaigns, "Reject", created.name, metadata=APPROVER, reason="Cap SMS at one a week.")
    assert rejected.state == S.CAMPAIGN_STATE_DRAFT
    assert rejected.state_reason == "Cap SMS at one a week."
    [decision] = rejected.approval_history
    assert decision.outcome == S.APPROVAL_OUTCOME_REJECTED and decision.comment == "Cap SMS at one a week."

    policy = campaign_pb2.ContactPolicy(channels=[S.CHANNEL_SMS, S.CHANNEL_MOBILE_APP])
    edited = (await campaigns.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=campaign_pb2.Campaign(name=created.name, contact_policy=policy),
        update_mask=field_mask_pb2.FieldMask(paths=["contact_policy.frequency_caps"])), metadata=CREATOR)).campaign
    assert list(edited.contact_policy.frequency_caps) == []

    await act(campaigns, "Submit", created.name, metadata=SUBMITTER)
    approved = await act(campaigns, "Approve", created.name, metadata=ADMIN)
    assert [d.outcome for d in approved.approval_history] == [S.APPROVAL_OUTCOME_REJECTED,
                                                              S.APPROVAL_OUTCOME_APPROVED]
    assert [d.reviewer for d in approved.approval_history] == ["marketer-b", "admin-1"]
    assert approved.submitter == "marketer-c" and approved.state_reason == ""


@pytest.mark.parametrize("state", [s for s in ALL_STATES if s in ALLOWED["Cancel"][0]])
async def test_cancel_works_from_every_state_but_the_final_ones(campaigns, campaign_in, state) -> None:
    campaign = await campaign_in(state)
    cancelled = await act(campaigns, "Cancel", campaign.name, reason="Product withdrawn by treasury.")
    assert cancelled.state == S.CAMPAIGN_STATE_CANCELLED
    assert cancelled.state_reason == "Product withdrawn by treasury."
    assert cancelled.HasField("close_time")


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "state"), REFUSED,
                         ids=[f"{a}-from-{S.CampaignState.Name(s)}" for a, s in REFUSED])
async def test_a_transition_not_allowed_from_the_state_is_failed_precondition(
    campaigns, campaign_in, action, state,
) -> None:
    campaign = await campaign_in(state)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, action, campaign.name, metadata=APPROVER)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error.value, domain=DOMAIN)
    assert info.reason == "INVALID_STATE_TRANSITION"
    current, target = S.CampaignState.Name(state), S.CampaignState.Name(ALLOWED[action][1])
    assert info.metadata["state"] == current.removeprefix("CAMPAIGN_STATE_")
    assert info.metadata["target_state"] == target.removeprefix("CAMPAIGN_STATE_")
    assert current.removeprefix("CAMPAIGN_STATE_") in error.value.details()
    assert target.removeprefix("CAMPAIGN_STATE_") in error.value.details()
    assert (await get(campaigns, campaign.name)).etag == campaign.etag


@pytest.mark.parametrize("who", [CREATOR, SUBMITTER], ids=["creator", "submitter"])
@pytest.mark.parametrize("action", ["Approve", "Reject"])
async def test_four_eyes_the_creator_and_the_submitter_cannot_decide(
    campaigns, ready_campaign, who, action,
) -> None:
    created = await ready_campaign()
    await act(campaigns, "Submit", created.name, metadata=SUBMITTER)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, action, created.name, metadata=who)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value, domain=DOMAIN).reason == "SELF_APPROVAL"
    unchanged = await get(campaigns, created.name)
    assert unchanged.state == S.CAMPAIGN_STATE_PENDING_APPROVAL and list(unchanged.approval_history) == []


async def test_an_admin_who_created_the_campaign_still_needs_a_second_person(campaigns, new_campaign, new_offer
                                                                             ) -> None:
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                              metadata=ADMIN)).campaign
    await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=new_offer()), metadata=ADMIN)
    await act(campaigns, "Submit", created.name, metadata=CREATOR)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, "Approve", created.name, metadata=ADMIN)
    assert error_info(error.value, domain=DOMAIN).reason == "SELF_APPROVAL"
    assert (await act(campaigns, "Approve", created.name, metadata=APPROVER)).state == S.CAMPAIGN_STATE_APPROVED


async def test_only_marketers_and_admins_move_campaigns(campaigns, ready_campaign) -> None:
    created = await ready_campaign()
    await act(campaigns, "Submit", created.name)
    for metadata in (ANALYST, bearer(Role.CHANNEL_APP), bearer(Role.AUDITOR)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await act(campaigns, "Approve", created.name, metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(error.value, domain=DOMAIN).reason == "ROLE_NOT_ALLOWED"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, "Approve", created.name, metadata=())
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await get(campaigns, created.name)).state == S.CAMPAIGN_STATE_PENDING_APPROVAL


async def test_an_incomplete_campaign_cannot_be_submitted_and_every_gap_is_named(
    campaigns, new_campaign, new_offer, active_period,
) -> None:
    campaign = new_campaign(segment="", active_period=active_period(end=None))
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=campaign), metadata=CREATOR)).campaign
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, "Submit", created.name)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error.value, domain=DOMAIN)
    assert info.reason == "CAMPAIGN_INCOMPLETE"
    for gap in ("offers:", "segment:", "active_period.end_time:"):
        assert gap in info.metadata["gaps"]

    offer = new_offer(contents=[campaign_pb2.ChannelContent(channel=S.CHANNEL_MOBILE_APP, template_id="app-1")])
    await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=offer), metadata=CREATOR)
    with pytest.raises(grpc.aio.AioRpcError) as still:
        await act(campaigns, "Submit", created.name)
    gaps = error_info(still.value, domain=DOMAIN).metadata["gaps"]
    assert f"{created.name}/offers/{offer.offer_id}.contents: no content for SMS" in gaps
    assert "offers: the campaign has no offer" not in gaps
    assert (await get(campaigns, created.name)).state == S.CAMPAIGN_STATE_DRAFT


async def test_a_campaign_whose_period_has_ended_cannot_be_submitted(
    campaigns, ready_campaign, active_period,
) -> None:
    created = await ready_campaign(active_period=active_period(start=-timedelta(days=10), end=-timedelta(days=1)))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, "Submit", created.name)
    assert "active_period.end_time: has passed" in error_info(error.value, domain=DOMAIN).metadata["gaps"]


async def test_launch_before_the_active_period_starts_is_failed_precondition(
    campaigns, ready_campaign, active_period,
) -> None:
    created = await ready_campaign(active_period=active_period(start=timedelta(days=2), end=timedelta(days=9)))
    await act(campaigns, "Submit", created.name)
    await act(campaigns, "Approve", created.name, metadata=APPROVER)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, "Launch", created.name)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value, domain=DOMAIN).reason == "ACTIVE_PERIOD_NOT_STARTED"
    # It can be scheduled for when the period starts instead.
    launch = timestamp_pb2.Timestamp()
    launch.FromDatetime(datetime.now(UTC) + timedelta(days=3))
    assert (await act(campaigns, "Schedule", created.name, launch_time=launch)).state == S.CAMPAIGN_STATE_SCHEDULED


@pytest.mark.parametrize(("launch_offset", "reason"), [
    (None, "is required"), (-timedelta(minutes=5), "future"), (timedelta(days=45), "active_period"),
])
async def test_a_bad_launch_time_is_invalid_argument(campaigns, campaign_in, launch_offset, reason) -> None:
    campaign = await campaign_in(S.CAMPAIGN_STATE_APPROVED)
    request = pb.ScheduleCampaignRequest(name=campaign.name)
    if launch_offset is not None:
        request.launch_time.FromDatetime(datetime.now(UTC) + launch_offset)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ScheduleCampaign(request, metadata=CREATOR)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in field_violations(error.value)["launch_time"]
    assert (await get(campaigns, campaign.name)).state == S.CAMPAIGN_STATE_APPROVED


@pytest.mark.parametrize(("action", "fields", "field"), [
    ("Reject", {"reason": ""}, "reason"),
    ("Reject", {"reason": "   "}, "reason"),
    ("Reject", {"reason": "r" * 1001}, "reason"),
    ("Approve", {"comment": "c" * 1001}, "comment"),
    ("Cancel", {"reason": ""}, "reason"),
])
async def test_a_missing_or_overlong_reason_is_invalid_argument(
    campaigns, campaign_in, count_rows, action, fields, field,
) -> None:
    campaign = await campaign_in(S.CAMPAIGN_STATE_PENDING_APPROVAL)
    transitions = await count_rows("campaign_transition")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, action, campaign.name, metadata=APPROVER, **fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await count_rows("campaign_transition") == transitions
    assert (await get(campaigns, campaign.name)).etag == campaign.etag


async def test_a_stale_etag_is_aborted_and_changes_nothing(campaigns, campaign_in) -> None:
    campaign = await campaign_in(S.CAMPAIGN_STATE_APPROVED)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, "Launch", campaign.name, etag=str(int(campaign.etag) - 1))
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert error_info(error.value, domain=DOMAIN).reason == "ETAG_MISMATCH"
    assert (await get(campaigns, campaign.name)).state == S.CAMPAIGN_STATE_APPROVED
    assert (await act(campaigns, "Launch", campaign.name, etag=campaign.etag)).state == S.CAMPAIGN_STATE_RUNNING


async def test_an_unknown_campaign_is_not_found_for_every_verb(campaigns) -> None:
    for action in ALLOWED:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await act(campaigns, action, "campaigns/no-such-campaign", metadata=APPROVER)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND, action
        assert error_info(error.value, domain=DOMAIN).reason == "CAMPAIGN_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as bad_name:
            await act(campaigns, action, "offers/x", metadata=APPROVER)
        assert bad_name.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "name" in field_violations(bad_name.value)


# --- retries ------------------------------------------------------------------------------------


async def test_a_retried_transition_returns_the_first_result_without_moving_again(
    campaigns, ready_campaign, count_rows,
) -> None:
    created = await ready_campaign()
    request_id = str(uuid.uuid4())
    first = await act(campaigns, "Submit", created.name, request_id=request_id)
    transitions, events = await count_rows("campaign_transition"), await count_rows("outbox_event")
    again = await act(campaigns, "Submit", created.name, request_id=request_id)
    assert again == first
    assert (await count_rows("campaign_transition"), await count_rows("outbox_event")) == (transitions, events)
    # The same key for another verb is a client bug, not a replay.
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await act(campaigns, "Cancel", created.name, request_id=request_id)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(error.value)
    # Without the key, a second submission is refused by the state machine.
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await act(campaigns, "Submit", created.name)
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_retried_approval_after_the_reply_was_lost_is_not_a_double_decision(
    campaigns, campaign_in,
) -> None:
    campaign = await campaign_in(S.CAMPAIGN_STATE_PENDING_APPROVAL)
    request_id = str(uuid.uuid4())
    approved = await act(campaigns, "Approve", campaign.name, metadata=APPROVER, request_id=request_id)
    launched = await act(campaigns, "Launch", campaign.name)
    replayed = await act(campaigns, "Approve", campaign.name, metadata=APPROVER, request_id=request_id)
    assert replayed.state == launched.state == S.CAMPAIGN_STATE_RUNNING
    assert list(replayed.approval_history) == list(approved.approval_history)


# --- what may change in which state -------------------------------------------------------------


async def test_after_draft_only_names_and_descriptions_change(campaigns, campaign_in) -> None:
    campaign = await campaign_in(S.CAMPAIGN_STATE_APPROVED)
    renamed = (await campaigns.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=campaign_pb2.Campaign(name=campaign.name, display_name="Spring renewal (final)"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=CREATOR)).campaign
    assert renamed.display_name == "Spring renewal (final)" and renamed.state == S.CAMPAIGN_STATE_APPROVED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.UpdateCampaign(pb.UpdateCampaignRequest(
            campaign=campaign_pb2.Campaign(name=campaign.name, segment="segments/everyone", description="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["description", "segment"])), metadata=CREATOR)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value, domain=DOMAIN).reason == "CAMPAIGN_NOT_DRAFT"
    assert (await get(campaigns, campaign.name)).segment == campaign.segment


async def test_a_closed_campaign_cannot_change_at_all(campaigns, campaign_in) -> None:
    campaign = await campaign_in(S.CAMPAIGN_STATE_COMPLETED)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.UpdateCampaign(pb.UpdateCampaignRequest(
            campaign=campaign_pb2.Campaign(name=campaign.name, description="late edit"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"])), metadata=CREATOR)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value, domain=DOMAIN).reason == "CAMPAIGN_CLOSED"


@pytest.mark.parametrize("state", [S.CAMPAIGN_STATE_PENDING_APPROVAL, S.CAMPAIGN_STATE_RUNNING,
                                   S.CAMPAIGN_STATE_CANCELLED])
async def test_only_a_draft_can_be_deleted(campaigns, campaign_in, state) -> None:
    campaign = await campaign_in(state)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.DeleteCampaign(pb.DeleteCampaignRequest(name=campaign.name), metadata=CREATOR)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await get(campaigns, campaign.name)).state == state


async def test_offers_are_frozen_once_submitted(campaigns, campaign_in, new_offer) -> None:
    campaign = await campaign_in(S.CAMPAIGN_STATE_PENDING_APPROVAL)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.CreateOffer(pb.CreateOfferRequest(parent=campaign.name, offer=new_offer()),
                                    metadata=CREATOR)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value, domain=DOMAIN).reason == "CAMPAIGN_NOT_DRAFT"
    [offer] = (await campaigns.ListOffers(pb.ListOffersRequest(parent=campaign.name), metadata=ANALYST)).offers
    with pytest.raises(grpc.aio.AioRpcError) as update:
        await campaigns.UpdateOffer(pb.UpdateOfferRequest(
            offer=campaign_pb2.Offer(name=offer.name, priority=99),
            update_mask=field_mask_pb2.FieldMask(paths=["priority"])), metadata=CREATOR)
    assert update.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as delete:
        await campaigns.DeleteOffer(pb.DeleteOfferRequest(name=offer.name), metadata=CREATOR)
    assert delete.value.code() == grpc.StatusCode.FAILED_PRECONDITION
