"""Campaign test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import duration_pb2
from google.type import decimal_pb2, interval_pb2, money_pb2
from sqlalchemy.dialects import postgresql as pg

from crm.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import product_risk_pb2
from crm_campaign.app import SPEC
from crm_campaign.audience.read_models import customer_contact, open_complaint, segment_member
from crmkit.auth import Role
from crmkit.testing import bearer, row_counter, service_fixtures, with_overrides
from crmkit.values import timestamp

# The templates the channel adapters know in these tests (templates are adapter ids). The shared
# server runs no dispatcher (dispatch tests drive their own, on adapters they can look into) and
# follows no peer feed (the followers are tested on their own).
TEMPLATES = {
    "SMS": ["sms-td-renewal-v2", "sms-1", "a", "b", "t"],
    "MOBILE_APP": ["app-td-banner", "app-1", "a", "b", "t"],
    "EMAIL": ["mail-1", "a", "b", "t"],
    "WECHAT": ["wechat-1", "a", "b", "t"],
}
campaign_database, campaign_service, campaigns = service_fixtures(
    SPEC, campaign_service_pb2_grpc.CampaignServiceStub, stub="campaigns", templates=TEMPLATES,
    dispatcher_enabled=False, feedback_target="", segment_target="", profile_target="", risk_target="")


def period(start: timedelta | None = -timedelta(hours=1), end: timedelta | None = timedelta(days=30)
           ) -> interval_pb2.Interval:
    """An active period relative to now."""
    now = datetime.now(UTC)
    interval = interval_pb2.Interval()
    if start is not None:
        interval.start_time.CopyFrom(timestamp(now + start))
    if end is not None:
        interval.end_time.CopyFrom(timestamp(now + end))
    return interval


def cny(units: int, nanos: int = 0) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", units=units, nanos=nanos)


def make_campaign(**overrides: object) -> campaign_pb2.Campaign:
    campaign = campaign_pb2.Campaign(
        campaign_id=f"spring-renewal-{uuid.uuid4().hex[:10]}",
        display_name="Spring 2026 time-deposit renewal",
        description="Renew maturing time deposits at the spring rate; SMS first, then the app.",
        type=campaign_pb2.CAMPAIGN_TYPE_BATCH,
        segment="segments/maturing-deposits",
        active_period=period(),
        contact_policy=campaign_pb2.ContactPolicy(
            channels=[campaign_pb2.CHANNEL_SMS, campaign_pb2.CHANNEL_MOBILE_APP],
            channel_strategy=campaign_pb2.CHANNEL_STRATEGY_FIXED_ORDER,
            frequency_caps=[campaign_pb2.FrequencyCap(
                max_contacts=2, period=duration_pb2.Duration(seconds=7 * 86400),
                scope=campaign_pb2.FREQUENCY_CAP_SCOPE_ALL_CAMPAIGNS)],
        ),
        control_group=campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="10")),
        max_contacts=50_000,
        fixed_cost=cny(20_000),
        channel_costs=[campaign_pb2.ChannelCost(channel=campaign_pb2.CHANNEL_SMS, cost_per_contact=cny(0, 50_000_000))],
    )
    return with_overrides(campaign, overrides)


def make_offer(**overrides: object) -> campaign_pb2.Offer:
    offer = campaign_pb2.Offer(
        offer_id=f"td-3y-{uuid.uuid4().hex[:8]}",
        display_name="3-year time deposit at 2.60 %",
        product_code="TD-3Y-CNY",
        product_risk_level=product_risk_pb2.PRODUCT_RISK_LEVEL_R1,
        priority=70,
        expected_value=cny(1_200),
        contents=[
            campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_SMS, template_id="sms-td-renewal-v2"),
            campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_MOBILE_APP, template_id="app-td-banner",
                                        headline="Renew at 2.60 %"),
        ],
        conversion_points=500,
    )
    return with_overrides(offer, overrides)


@pytest.fixture
def new_campaign() -> Any:
    """A valid batch campaign with a fresh id, active from an hour ago for 30 days."""
    return make_campaign


@pytest.fixture
def new_offer() -> Any:
    """A valid offer with a fresh id, with content for SMS and the app."""
    return make_offer


@pytest.fixture(name="active_period")
def active_period_fixture() -> Any:
    """`active_period(start=..., end=...)`: an Interval relative to now (None leaves an end open)."""
    return period


@pytest.fixture(name="cny")
def cny_fixture() -> Any:
    """`cny(units, nanos=0)`: an amount in the reporting currency."""
    return cny


@pytest.fixture
def count_rows(campaign_service: tuple[Any, Any]) -> Any:
    """Rows in a table of the campaign database, to show that a refused call wrote nothing."""
    return row_counter(campaign_service)


MARKETER_A = bearer(Role.MARKETER, subject="marketer-a")
MARKETER_B = bearer(Role.MARKETER, subject="marketer-b")


async def launch_campaign(campaigns: Any, campaign: campaign_pb2.Campaign, *offers: campaign_pb2.Offer
                          ) -> tuple[campaign_pb2.Campaign, list[campaign_pb2.Offer]]:
    """Create `campaign` with `offers` and take it to RUNNING: submitted by marketer-a, approved by marketer-b,
    launched without its first audience build (each test builds when it means to)."""
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=campaign),
                                              metadata=MARKETER_A)).campaign
    made = [(await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=offer),
                                         metadata=MARKETER_A)).offer for offer in offers or (make_offer(),)]
    await campaigns.SubmitCampaign(pb.SubmitCampaignRequest(name=created.name), metadata=MARKETER_A)
    await campaigns.ApproveCampaign(pb.ApproveCampaignRequest(name=created.name), metadata=MARKETER_B)
    running = (await campaigns.LaunchCampaign(pb.LaunchCampaignRequest(name=created.name, defer_audience_build=True),
                                              metadata=MARKETER_A)).campaign
    return running, made


@pytest.fixture
def running_campaign(campaigns: Any) -> Any:
    """`await running_campaign(campaign=None, *offers)`: a RUNNING campaign (a fresh one by default) and its offers."""
    async def make(campaign: campaign_pb2.Campaign | None = None, *offers: campaign_pb2.Offer) -> Any:
        return await launch_campaign(campaigns, campaign or make_campaign(), *offers)
    return make


@pytest.fixture
def queue_dispatches(campaign_service: tuple[Any, Any]) -> Any:
    """`await queue_dispatches(campaign_id, planned)`: what an audience build hands to dispatch,
    queued through the service's own use case in one unit of work; returns the rows added."""
    from crm_campaign import tables
    from crm_campaign.api import dispatch_messages
    from crm_campaign.campaigns.repository import CampaignRepository
    from crm_campaign.dispatch.repository import DispatchRepository
    from crm_campaign.dispatch.service import Dispatches
    from crmkit.outbox import Outbox
    from crmkit.pagination import PageTokens

    _, runtime = campaign_service
    use_case = Dispatches(repository=DispatchRepository(), campaigns=CampaignRepository(),
                          outbox=Outbox(tables.outbox_event), page_tokens=PageTokens(b"k" * 32),
                          feed_payload=dispatch_messages.to_proto)

    async def queue(campaign_id: str, planned: Any) -> int:
        async with runtime.db.unit_of_work() as uow:
            return await use_case.queue(uow=uow, campaign_id=campaign_id, planned=planned, actor="marketer-a")
    return queue


@pytest.fixture
def assign_audience(campaign_service: tuple[Any, Any]) -> Any:
    """`await assign_audience(campaign_id, eligible, suppressed=())`: what an audience build stores,
    through the service's own use case (control split by the campaign's seed, dispatches queued)."""
    from crm_campaign import tables
    from crm_campaign.api import dispatch_messages
    from crm_campaign.audience.repository import AudienceRepository
    from crm_campaign.audience.service import Audiences
    from crm_campaign.campaigns.repository import CampaignRepository
    from crm_campaign.dispatch.repository import DispatchRepository
    from crm_campaign.dispatch.service import Dispatches
    from crmkit.outbox import Outbox
    from crmkit.pagination import PageTokens

    _, runtime = campaign_service
    campaigns_ = CampaignRepository()
    dispatches = Dispatches(repository=DispatchRepository(), campaigns=campaigns_, outbox=Outbox(tables.outbox_event),
                            page_tokens=PageTokens(b"k" * 32), feed_payload=dispatch_messages.to_proto)
    audiences = Audiences(repository=AudienceRepository(), campaigns=campaigns_, dispatches=dispatches)

    async def assign(campaign_id: str, eligible: Any, suppressed: Any = ()) -> Any:
        async with runtime.db.unit_of_work() as uow:
            campaign = await campaigns_.get(uow, campaign_id)
            return await audiences.assign(uow=uow, campaign=campaign, eligible=eligible, suppressed=suppressed,
                                          actor="marketer-a")
    return assign


@pytest.fixture
def seed_read_models(campaign_service: tuple[Any, Any]) -> Any:
    """`await seed(segment_id, customers, dnc=(), complaints=(), no_consent=())`: the read models as
    the followers of segment's, profile's and feedback's feeds would leave them."""
    _, runtime = campaign_service

    async def seed(segment_id: str, customers: list[str], *, dnc: tuple[str, ...] = (),
                   complaints: tuple[str, ...] = (), no_consent: tuple[str, ...] = ()) -> None:
        async with runtime.db.unit_of_work() as uow:
            await uow.execute(sa.insert(segment_member), [{"segment_id": segment_id, "customer_id": c}
                                                          for c in customers])
            await uow.execute(_contact_rows(customers, dnc, no_consent))
            if complaints:
                await uow.execute(sa.insert(open_complaint), [{"complaint_id": f"cmp-{c}", "customer_id": c}
                                                              for c in complaints])
    return seed


def _contact_rows(customers: list[str], dnc: tuple[str, ...], no_consent: tuple[str, ...]) -> Any:
    both = [int(campaign_pb2.CHANNEL_SMS), int(campaign_pb2.CHANNEL_MOBILE_APP)]
    return pg.insert(customer_contact).values([
        {"customer_id": c, "do_not_contact": c in dnc,
         "consented_channels": [] if c in no_consent else both,
         "reachable_channels": both} for c in customers]).on_conflict_do_nothing()
