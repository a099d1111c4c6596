"""GetNextBestAction through CampaignService: one customer's offers of running campaigns ranked
with reasons, the offers left out with why not, the decision stored and referenced by
RecordResponse, and the answers to bad input, strangers and callers outside their book."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import duration_pb2
from google.type import decimal_pb2

from crm.campaign.v1 import campaign_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2, product_risk_pb2
from crm_campaign.audience.read_models import customer_contact
from crm_campaign.book.tables import customer_manager
from crm_campaign.nba.tables import nba_decision
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, field_violations
from crmkit.values import timestamp

APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
MARKETER = bearer(Role.MARKETER, subject="marketer-a")
SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
APP_CHANNEL = campaign_pb2.CHANNEL_MOBILE_APP
R3 = product_risk_pb2.PRODUCT_RISK_LEVEL_R3
NO_HOLDOUT = campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="0"))


def tagged() -> tuple[str, str]:
    """A fresh segment id and customer id: other tests' running campaigns target other segments."""
    tag = uuid.uuid4().hex[:8]
    return f"nba-{tag}", f"nba-cust-{tag}"


@pytest.fixture
def campaign_in(new_campaign: Any) -> Any:
    """`campaign_in(segment_id, **overrides)`: a batch campaign on that segment, nobody held out."""
    def make(segment_id: str, **overrides: Any) -> campaign_pb2.Campaign:
        return new_campaign(segment=f"segments/{segment_id}", control_group=NO_HOLDOUT, **overrides)
    return make


@pytest.fixture
def offer(new_offer: Any) -> Any:
    """`offer(offer_id, priority, **overrides)`: an R1 offer worth 1,200 CNY with SMS and app content."""
    def make(offer_id: str, priority: int, **overrides: Any) -> campaign_pb2.Offer:
        return new_offer(offer_id=offer_id, priority=priority, **overrides)
    return make


async def ask(campaigns: Any, customer_id: str, *, channel: int = APP_CHANNEL, max_actions: int = 0,
              metadata: Any = APP) -> pb.GetNextBestActionResponse:
    return await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
        customer=f"customers/{customer_id}", channel=channel, max_actions=max_actions, audit=SERVICE),
        metadata=metadata)


def why_not(answer: pb.GetNextBestActionResponse) -> dict[str, str]:
    return {e.offer: e.reason for e in answer.excluded}


async def respond(campaigns: Any, customer_id: str, offer_name: str, decision_id: str,
                  type_: int = engagement_pb2.RESPONSE_TYPE_SHOWN) -> engagement_pb2.OfferResponse:
    response = engagement_pb2.OfferResponse(
        customer=f"customers/{customer_id}", offer=offer_name, decision_id=decision_id, channel=APP_CHANNEL,
        type=type_, response_time=timestamp(datetime.now(UTC) - timedelta(seconds=5)))
    return (await campaigns.RecordResponse(pb.RecordResponseRequest(response=response, request_id=str(uuid.uuid4())),
                                           metadata=APP)).response


async def test_eligible_offers_come_ranked_with_reasons_one_per_campaign_and_the_decision_is_stored(
        campaigns, running_campaign, campaign_in, offer, seed_read_models, count_rows) -> None:
    segment, customer = tagged()
    await seed_read_models(segment, [customer])
    first, [best, weaker] = await running_campaign(campaign_in(segment), offer("a-best", 90), offer("a-weak", 10))
    _, [middle] = await running_campaign(campaign_in(segment), offer("b-mid", 50))
    _, [low] = await running_campaign(campaign_in(segment), offer("c-low", 20))
    decisions = await count_rows("nba_decision")

    answer = await ask(campaigns, customer, max_actions=2)

    assert [(a.rank, a.offer) for a in answer.actions] == [(1, best.name), (2, middle.name)]
    top = answer.actions[0]
    assert top.kind == engagement_pb2.ACTION_KIND_OFFER and top.campaign == first.name
    assert top.product_code == "TD-3Y-CNY" and top.headline == "Renew at 2.60 %"
    assert top.template_id == "app-td-banner" and top.expected_value.units == 1_200
    assert top.score > answer.actions[1].score > 0
    assert [r.code for r in top.reasons] == ["CAMPAIGN_PRIORITY", "SEGMENT_MEMBER"]
    assert "Priority 90" in top.reasons[0].description and top.reasons[0].weight == 1.0
    assert why_not(answer) == {weaker.name: "ARBITRATION_LOST", low.name: "ARBITRATION_LOST"}
    assert uuid.UUID(answer.decision_id) and not answer.degraded and not answer.degraded_reasons
    assert await count_rows("nba_decision") == decisions + 1

    default = await ask(campaigns, customer)
    assert [a.offer for a in default.actions] == [best.name, middle.name, low.name], "0 means 3"
    assert default.decision_id != answer.decision_id


async def test_left_out_offers_say_why_not(
        campaigns, running_campaign, campaign_in, offer, seed_read_models, campaign_service) -> None:
    segment, customer = tagged()
    await seed_read_models(segment, [customer])
    _, [kept] = await running_campaign(campaign_in(segment), offer("kept", 60))
    _, [elsewhere] = await running_campaign(campaign_in(segment), offer(
        "elsewhere", 90, eligibility=campaign_pb2.OfferEligibility(segment="segments/somebody-else")))
    _, [risky] = await running_campaign(campaign_in(segment), offer("risky", 95, product_risk_level=R3))
    _, [sms_only] = await running_campaign(campaign_in(segment), offer(
        "sms-only", 99, channels=[campaign_pb2.CHANNEL_SMS]))
    _, [counter] = await running_campaign(campaign_in(segment, contact_policy=campaign_pb2.ContactPolicy(
        channels=[campaign_pb2.CHANNEL_SMS])), offer("counter", 99, contents=[
            campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_SMS, template_id="sms-1")]))

    answer = await ask(campaigns, customer)

    assert [a.offer for a in answer.actions] == [kept.name]
    assert why_not(answer) == {elsewhere.name: "INELIGIBLE", risky.name: "SUITABILITY_UNKNOWN",
                               sms_only.name: "NOT_ON_CHANNEL", counter.name: "NOT_ON_CHANNEL"}
    assert all(e.description for e in answer.excluded)
    # This server asks no risk service: an offer above R1 is left out and the answer says so.
    assert answer.degraded and list(answer.degraded_reasons) == ["SUITABILITY_UNAVAILABLE"]

    # Do-not-contact leaves out every offer that passed the checks before it (eligibility, channel).
    _, runtime = campaign_service
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.update(customer_contact).where(customer_contact.c.customer_id == customer)
                          .values(do_not_contact=True))
    refused = await ask(campaigns, customer)
    assert not refused.actions and not refused.degraded, "risk is not asked about a customer nobody may contact"
    assert why_not(refused) == {**why_not(answer), kept.name: "DO_NOT_CONTACT", risky.name: "DO_NOT_CONTACT"}


async def test_consent_and_complaints_are_checked_on_the_asking_channel(
        campaigns, running_campaign, campaign_in, offer, seed_read_models) -> None:
    segment, silent, unhappy = *tagged(), f"nba-unhappy-{uuid.uuid4().hex[:6]}"
    await seed_read_models(segment, [silent, unhappy], no_consent=(silent,), complaints=(unhappy,))
    _, [made] = await running_campaign(campaign_in(
        segment, type=campaign_pb2.CAMPAIGN_TYPE_INBOUND, contact_policy=campaign_pb2.ContactPolicy(
            channels=[campaign_pb2.CHANNEL_MOBILE_APP, campaign_pb2.CHANNEL_BRANCH_COUNTER])), offer("deposit", 60))

    assert why_not(await ask(campaigns, silent)) == {made.name: "NO_CONSENT"}
    # Profile keeps no marketing consent for the counter: the customer is standing there.
    at_counter = await ask(campaigns, silent, channel=campaign_pb2.CHANNEL_BRANCH_COUNTER)
    assert [a.offer for a in at_counter.actions] == [made.name] and at_counter.actions[0].template_id == ""
    assert why_not(await ask(campaigns, unhappy)) == {made.name: "OPEN_COMPLAINT"}


async def test_shown_through_record_response_counts_against_the_cap_and_declined_ends_the_campaign(
        campaigns, running_campaign, campaign_in, offer, seed_read_models) -> None:
    segment, customer = tagged()
    await seed_read_models(segment, [customer])
    once_a_day = campaign_pb2.ContactPolicy(
        channels=[campaign_pb2.CHANNEL_MOBILE_APP], frequency_caps=[campaign_pb2.FrequencyCap(
            max_contacts=1, period=duration_pb2.Duration(seconds=86400),
            scope=campaign_pb2.FREQUENCY_CAP_SCOPE_CAMPAIGN)])
    _, [capped] = await running_campaign(campaign_in(segment, contact_policy=once_a_day), offer("capped", 90))
    _, [other] = await running_campaign(campaign_in(segment), offer("other", 50))

    first = await ask(campaigns, customer)
    assert [a.offer for a in first.actions] == [capped.name, other.name]
    shown = await respond(campaigns, customer, capped.name, first.decision_id)
    assert shown.decision_id == first.decision_id and shown.type == engagement_pb2.RESPONSE_TYPE_SHOWN

    second = await ask(campaigns, customer)
    assert [a.offer for a in second.actions] == [other.name]
    assert why_not(second) == {capped.name: "FREQUENCY_CAP"}

    await respond(campaigns, customer, other.name, second.decision_id, engagement_pb2.RESPONSE_TYPE_DECLINED)
    third = await ask(campaigns, customer)
    assert not third.actions and why_not(third) == {capped.name: "FREQUENCY_CAP", other.name: "DECLINED"}


async def test_a_response_must_name_a_decision_that_proposed_the_offer_to_the_customer(
        campaigns, running_campaign, campaign_in, offer, seed_read_models, count_rows) -> None:
    segment, customer = tagged()
    await seed_read_models(segment, [customer, f"{customer}-x"])
    _, [proposed, passed_over] = await running_campaign(campaign_in(segment), offer("yes", 90), offer("no", 10))
    decision = (await ask(campaigns, customer)).decision_id
    responses = await count_rows("offer_response")

    cases = [
        (customer, passed_over.name, decision, grpc.StatusCode.INVALID_ARGUMENT),
        (f"{customer}-x", proposed.name, decision, grpc.StatusCode.INVALID_ARGUMENT),
        (customer, proposed.name, "not-a-uuid", grpc.StatusCode.INVALID_ARGUMENT),
        (customer, proposed.name, str(uuid.uuid4()), grpc.StatusCode.NOT_FOUND),
    ]
    for who, what, decision_id, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await respond(campaigns, who, what, decision_id)
        assert refused.value.code() == code
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert "response.decision_id" in field_violations(refused.value)
        else:
            assert error_info(refused.value).reason == "DECISION_NOT_FOUND"
    assert await count_rows("offer_response") == responses, "a refused response records nothing"

    recorded = await respond(campaigns, customer, proposed.name, decision.upper(),
                             engagement_pb2.RESPONSE_TYPE_ACCEPTED)
    assert recorded.decision_id == decision, "stored in canonical form"


async def test_bad_requests_and_unknown_customers_are_refused_and_store_nothing(campaigns, count_rows) -> None:
    decisions = await count_rows("nba_decision")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
            customer="clients/1", channel=campaign_pb2.CHANNEL_SMS, max_actions=11), metadata=APP)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {"customer", "channel", "max_actions", "audit.purpose"}

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(audit=SERVICE), metadata=APP)
    assert set(field_violations(missing.value)) == {"customer", "channel"}

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await ask(campaigns, f"nobody-{uuid.uuid4().hex[:6]}")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(unknown.value).reason == "CUSTOMER_NOT_FOUND"
    assert await count_rows("nba_decision") == decisions


async def test_channel_apps_and_relationship_managers_of_the_customer_may_ask(
        campaigns, running_campaign, campaign_in, offer, seed_read_models, campaign_service) -> None:
    segment, customer = tagged()
    await seed_read_models(segment, [customer])
    await running_campaign(campaign_in(segment), offer("any", 50))
    _, runtime = campaign_service
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(customer_manager).values(  # the books: profile's Customer events
            customer_id=customer, relationship_manager_id="rm-007", event_at=datetime.now(UTC)))

    own = await ask(campaigns, customer, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007"))
    assert len(own.actions) == 1
    async with runtime.db.unit_of_work(read_only=True) as uow:
        requester = await uow.scalar(sa.select(nba_decision.c.requester).where(
            nba_decision.c.decision_id == own.decision_id))
    assert requester == "rm-007"
    for caller, code in ((bearer(Role.RELATIONSHIP_MANAGER, subject="rm-008"), grpc.StatusCode.PERMISSION_DENIED),
                         (MARKETER, grpc.StatusCode.PERMISSION_DENIED)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ask(campaigns, customer, metadata=caller)
        assert refused.value.code() == code


async def test_a_paused_campaign_leaves_the_very_next_answer(
        campaigns, running_campaign, campaign_in, offer, seed_read_models) -> None:
    segment, customer = tagged()
    await seed_read_models(segment, [customer])
    paused, [first] = await running_campaign(campaign_in(segment), offer("first", 90))
    _, [second] = await running_campaign(campaign_in(segment), offer("second", 50))
    assert [a.offer for a in (await ask(campaigns, customer)).actions] == [first.name, second.name]

    await campaigns.PauseCampaign(pb.PauseCampaignRequest(name=paused.name, reason="rate under review"),
                                  metadata=MARKETER)
    answer = await ask(campaigns, customer)
    assert [a.offer for a in answer.actions] == [second.name] and not answer.excluded


async def test_a_customer_only_the_books_know_is_known_and_in_their_managers_book(campaigns, campaign_service
                                                                                  ) -> None:
    customer = f"book-{uuid.uuid4().hex[:8]}"
    _, runtime = campaign_service
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(customer_manager).values(
            customer_id=customer, relationship_manager_id="rm-009", event_at=datetime.now(UTC)))
    own = await ask(campaigns, customer, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-009"))
    assert own.decision_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ask(campaigns, customer, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-010"))
    assert (refused.value.code(), error_info(refused.value).reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                         "OUTSIDE_BOOK")
