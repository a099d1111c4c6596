"""Campaign's trigger rules fire on profile's real change feed (both services in process, each on
its own database), and replaying that feed from its start fires nothing twice: a card application
ingested in profile fires the rule once (one care task for the customer's relationship manager);
campaign restarted with its profile cursor erased reads the whole feed again and the rule's
firings (and its care task) stay as they were."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc, care_pb2, trigger_pb2
from crm.profile.v1 import customer_pb2, event_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_campaign import tables
from crm_campaign.app import SPEC as CAMPAIGN
from crm_campaign.care.tables import care_task
from crm_campaign.triggers.firing_repository import FiringRepository
from crm_campaign.triggers.model import FiringOutcome
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.db import Database
from crmkit.testing import bearer, eventually, migrated_database, running_service, serving
from crmkit.values import timestamp

pytestmark = pytest.mark.slow

ADMIN = bearer(Role.ADMIN, subject="admin-1")
MARKETER = bearer(Role.MARKETER, subject="marketer-a")
PROFILE_KEYS = {"encryption_keys": "k1:" + base64.b64encode(os.urandom(32)).decode(), "active_key_id": "k1",
                "blind_index_key": base64.b64encode(os.urandom(32)).decode(), "feed_poll_seconds": 0.05}


def application(customer: str, application_id: str, outcome: int) -> event_pb2.CustomerEvent:
    return event_pb2.CustomerEvent(
        event_id=str(uuid.uuid4()), customer=f"customers/{customer}", event_type=event_pb2.EVENT_TYPE_CARD_APPLICATION,
        channel=event_pb2.EVENT_CHANNEL_MOBILE_BANKING, occur_time=timestamp(datetime.now(UTC)),
        source_system="card-origination", product_code="CC-GOLD",
        application=event_pb2.ApplicationDetail(application_id=application_id, outcome=outcome))


async def test_a_card_application_fires_once_and_a_replayed_feed_fires_nothing_again(database_factory) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    campaign_url = await migrated_database(database_factory, CAMPAIGN)
    settings: dict[str, Any] = {"feed_max_backoff_seconds": 0.3, "dispatcher_enabled": False, "segment_target": "",
                                "feedback_target": "", "risk_target": ""}
    customer, application_id = f"C{uuid.uuid4().hex[:10].upper()}", f"APP-{uuid.uuid4().hex[:8]}"
    async with serving(PROFILE, database_url=profile_url, **PROFILE_KEYS) as (profile_server, _):
        profile_target = f"127.0.0.1:{profile_server.bound_port}"
        async with grpc.aio.insecure_channel(profile_target) as profile_channel:
            profiles = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)
            await profiles.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(customer_id=customer, full_name="Li Na", branch_id="br-1",
                                               customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
                                               relationship_manager_id="rm-li"),
                request_id=str(uuid.uuid4())), metadata=ADMIN)

            async with running_service(CAMPAIGN, database_url=campaign_url, profile_target=profile_target,
                                       **settings) as (channel, runtime):
                campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channel)
                rule = (await campaigns.CreateTriggerRule(campaign_service_pb2.CreateTriggerRuleRequest(
                    trigger_rule=trigger_pb2.TriggerRule(
                        trigger_rule_id="card-applicant-loan", display_name="Card applicant: loan call",
                        card_application=trigger_pb2.CardApplicationCondition(card_product_codes=["CC-GOLD"]),
                        care_task_action=trigger_pb2.CareTaskAction(
                            kind=care_pb2.CARE_TASK_KIND_OFFER_FOLLOW_UP, title="Offer a consumer loan"))),
                    metadata=MARKETER)).trigger_rule
                ingested = await profiles.IngestEvents(iter([event_pb2.IngestEventsRequest(events=[
                    application(customer, application_id, event_pb2.APPLICATION_OUTCOME_SUBMITTED),
                    application(customer, application_id, event_pb2.APPLICATION_OUTCOME_APPROVED)])]),
                    metadata=ADMIN)
                assert ingested.accepted_count == 2, ingested.rejections

                async def firings() -> list[Any]:
                    async with runtime.db.unit_of_work(read_only=True) as uow:
                        return await FiringRepository().firings(uow, rule.trigger_rule_id)

                async def tasks() -> list[tuple[str, str]]:
                    async with runtime.db.unit_of_work(read_only=True) as uow:
                        return [(row.assignee, row.source) for row in (await uow.execute(
                            sa.select(care_task).where(care_task.c.customer_id == customer))).all()]

                async def cursor() -> str | None:
                    async with runtime.db.unit_of_work(read_only=True) as uow:
                        return await uow.scalar(sa.select(tables.feed_cursor.c.cursor).where(
                            tables.feed_cursor.c.feed == "profile"))

                first = await eventually(firings, until=lambda found: len(found) == 1, seconds=30,
                                         what="the card application's firing")
                assert (first[0].customer_id, first[0].outcome) == (customer, FiringOutcome.CARE_TASK_CREATED)
                assert await tasks() == [("rm-li", rule.name)], "one task, for the customer's manager"
                settled = await eventually(cursor, seconds=30, what="campaign's profile cursor")

            # Replay: campaign forgets where it was in profile's feed and reads it all again.
            stopped = await Database.open(campaign_url)
            try:
                async with stopped.unit_of_work() as uow:
                    await uow.execute(sa.delete(tables.feed_cursor).where(tables.feed_cursor.c.feed == "profile"))
            finally:
                await stopped.dispose()
            async with running_service(CAMPAIGN, database_url=campaign_url, profile_target=profile_target,
                                       **settings) as (channel, runtime):
                await eventually(cursor, until=lambda now: now == settled, seconds=30,
                                 what="the replayed feed read to its end")
                assert await firings() == first, "a replayed event fires nothing twice"
                assert len(await tasks()) == 1, "and raises no second care task"
                campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channel)
                again = (await campaigns.GetTriggerRule(campaign_service_pb2.GetTriggerRuleRequest(
                    name=rule.name), metadata=MARKETER)).trigger_rule
                assert again.fire_count == 1
