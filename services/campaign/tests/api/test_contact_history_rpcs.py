"""ListContactHistory through CampaignService: built from what campaign recorded (dispatches sent
or failed, responses with and without a dispatch, conversions, completed care tasks), newest
first over pages, filtered, own book only for relationship managers, every read audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.type import decimal_pb2, interval_pb2

from crm.campaign.v1 import campaign_pb2, care_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2
from crm_campaign import tables
from crm_campaign.api import dispatch_messages
from crm_campaign.book.tables import customer_manager
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.model import Planned
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crmkit.auth import Role
from crmkit.outbox import Outbox
from crmkit.testing import bearer, error_reason, field_violations
from crmkit.values import timestamp

APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
MARKETER = bearer(Role.MARKETER, subject="marketer-a")
SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="branch visit")


def rm(subject: str) -> tuple[tuple[str, str], ...]:
    return bearer(Role.RELATIONSHIP_MANAGER, subject=subject)


def ago(minutes: float) -> Any:
    return timestamp(datetime.now(UTC) - timedelta(minutes=minutes))


async def respond(campaigns: Any, customer: str, offer: str, channel: int, type_: int, at: Any,
                  dispatch: str = "", decision_id: str = "") -> None:
    await campaigns.RecordResponse(pb.RecordResponseRequest(response=engagement_pb2.OfferResponse(
        customer=customer, offer=offer, dispatch=dispatch, channel=channel, type=type_, response_time=at,
        decision_id=decision_id), request_id=str(uuid.uuid4())), metadata=APP)


@pytest.fixture
async def history(campaigns, campaign_service, running_campaign, queue_dispatches, new_campaign, new_offer,
                  seed_read_models, tmp_path: Path) -> Any:
    """One customer's contacts: campaign A's SMS (clicked, then bought) and failed app dispatches,
    campaign B's offer shown in the app by next best action (then clicked) half an hour ago, and
    B's offer accepted on an RM visit through a care task. The customer is in rm-h's book."""
    _, runtime = campaign_service
    customer_id = f"h-{uuid.uuid4().hex[:8]}"
    customer = f"customers/{customer_id}"
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(customer_manager).values(customer_id=customer_id, relationship_manager_id="rm-h",
                                                             event_at=datetime.now(UTC)))
    campaign_a, [offer_a] = await running_campaign()
    segment = f"hist-{customer_id}"
    await seed_read_models(segment, [customer_id])
    campaign_b, [offer_b] = await running_campaign(
        new_campaign(display_name="Wealth week", segment=f"segments/{segment}",
                     control_group=campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="0"))),
        new_offer(display_name="Bond fund FUND-BOND-01", product_code="FUND-BOND-01"))
    # Responses to an offer next best action made name its decision (one contact in the history).
    decision = await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
        customer=customer, channel=campaign_pb2.CHANNEL_MOBILE_APP, audit=SERVICE), metadata=APP)
    assert [a.offer for a in decision.actions] == [offer_b.name]

    await respond(campaigns, customer, offer_b.name, campaign_pb2.CHANNEL_MOBILE_APP,
                  engagement_pb2.RESPONSE_TYPE_SHOWN, ago(30), decision_id=decision.decision_id)
    await respond(campaigns, customer, offer_b.name, campaign_pb2.CHANNEL_MOBILE_APP,
                  engagement_pb2.RESPONSE_TYPE_CLICKED, ago(29), decision_id=decision.decision_id)

    await queue_dispatches(campaign_a.campaign_id, [
        Planned(customer_id=customer_id, offer_id=offer_a.offer_id, channel=Channel.SMS,
                template_id="sms-td-renewal-v2"),
        Planned(customer_id=customer_id, offer_id=offer_a.offer_id, channel=Channel.MOBILE_APP,
                template_id="app-td-banner")])
    worker = Dispatcher(db=runtime.db, repository=DispatchRepository(),
                        adapters=ChannelAdapters({int(Channel.SMS): FileAdapter(tmp_path)}),
                        outbox=Outbox(tables.outbox_event), feed_payload=dispatch_messages.to_proto)
    await worker.drain()
    await worker.close()
    dispatches = (await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=campaign_a.name), metadata=ANALYST)
                  ).dispatches
    sms = next(d for d in dispatches if d.channel == campaign_pb2.CHANNEL_SMS)
    app = next(d for d in dispatches if d.channel == campaign_pb2.CHANNEL_MOBILE_APP)
    await respond(campaigns, customer, offer_a.name, campaign_pb2.CHANNEL_SMS, engagement_pb2.RESPONSE_TYPE_OPENED,
                  ago(0), dispatch=sms.name)
    await respond(campaigns, customer, offer_a.name, campaign_pb2.CHANNEL_SMS, engagement_pb2.RESPONSE_TYPE_CLICKED,
                  ago(0), dispatch=sms.name)
    bought = (await campaigns.RecordConversion(pb.RecordConversionRequest(conversion=engagement_pb2.Conversion(
        customer=customer, offer=offer_a.name, conversion_time=ago(0), source_reference=f"ACC-{customer_id}"),
        request_id=str(uuid.uuid4())), metadata=APP)).conversion

    task = (await campaigns.CreateCareTask(pb.CreateCareTaskRequest(care_task=care_pb2.CareTask(
        customer=customer, kind=care_pb2.CARE_TASK_KIND_OFFER_FOLLOW_UP, title="Present the bond fund",
        assignee="rm-h", due_time=ago(-60), offer=offer_b.name)), metadata=rm("rm-h"))).care_task
    await campaigns.CompleteCareTask(pb.CompleteCareTaskRequest(
        name=task.name, outcome=care_pb2.CARE_TASK_OUTCOME_ACCEPTED, contact_channel=campaign_pb2.CHANNEL_RM_VISIT),
        metadata=rm("rm-h"))
    return {"customer": customer, "a": campaign_a, "b": campaign_b, "offer_a": offer_a, "offer_b": offer_b,
            "sms": sms, "app": app, "bought": bought}


async def read(campaigns: Any, metadata: Any = APP, **fields: Any) -> pb.ListContactHistoryResponse:
    fields.setdefault("audit", SERVICE)
    return await campaigns.ListContactHistory(pb.ListContactHistoryRequest(**fields), metadata=metadata)


async def test_the_history_joins_dispatches_responses_conversions_and_care_tasks_newest_first(
        campaigns, history) -> None:
    h = history
    entries = (await read(campaigns, customer=h["customer"])).entries
    R = engagement_pb2
    summary = [(e.campaign, e.offer, e.channel, e.result, e.dispatch, e.relationship_manager_id) for e in entries]
    dispatched = {
        (h["a"].name, h["offer_a"].name, campaign_pb2.CHANNEL_SMS, R.CONTACT_RESULT_CONVERTED, h["sms"].name, ""),
        (h["a"].name, h["offer_a"].name, campaign_pb2.CHANNEL_MOBILE_APP, R.CONTACT_RESULT_DELIVERY_FAILED,
         h["app"].name, "")}
    assert summary[0] == (h["b"].name, h["offer_b"].name, campaign_pb2.CHANNEL_RM_VISIT, R.CONTACT_RESULT_ACCEPTED,
                          "", "rm-h"), "the last offer made comes first"
    assert set(summary[1:3]) == dispatched
    assert summary[3] == (h["b"].name, h["offer_b"].name, campaign_pb2.CHANNEL_MOBILE_APP, R.CONTACT_RESULT_CLICKED,
                          "", ""), "the shown and clicked offer is one inbound contact"
    assert len(entries) == 4
    times = [e.contact_time.ToDatetime() for e in entries]
    assert times == sorted(times, reverse=True)
    converted = next(e for e in entries if e.dispatch == h["sms"].name)
    assert (converted.campaign_display_name, converted.offer_display_name, converted.product_code) == (
        h["a"].display_name, h["offer_a"].display_name, "TD-3Y-CNY")
    assert converted.result_time == h["bought"].conversion_time
    inbound = entries[3]
    assert (inbound.campaign_display_name, inbound.offer_display_name, inbound.product_code) == (
        "Wealth week", "Bond fund FUND-BOND-01", "FUND-BOND-01")
    assert inbound.result_time.ToDatetime() > inbound.contact_time.ToDatetime(), "shown first, clicked later"
    failed = next(e for e in entries if e.dispatch == h["app"].name)
    assert failed.result_time == failed.contact_time

    pages, token = [], ""
    while True:
        page = await read(campaigns, customer=h["customer"], page_size=1, page_token=token)
        pages.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    assert list(pages) == list(entries)


async def test_the_history_filters_by_channel_campaign_and_time(campaigns, history) -> None:
    h = history
    by_channel = (await read(campaigns, customer=h["customer"], channel=campaign_pb2.CHANNEL_SMS)).entries
    assert [e.dispatch for e in by_channel] == [h["sms"].name]
    by_campaign = (await read(campaigns, customer=h["customer"], campaign=h["b"].name)).entries
    assert [e.channel for e in by_campaign] == [campaign_pb2.CHANNEL_RM_VISIT, campaign_pb2.CHANNEL_MOBILE_APP]
    older = interval_pb2.Interval(end_time=ago(10))
    assert [e.channel for e in (await read(campaigns, customer=h["customer"], contact_interval=older)).entries] == [
        campaign_pb2.CHANNEL_MOBILE_APP]
    newer = interval_pb2.Interval(start_time=ago(10))
    assert len((await read(campaigns, customer=h["customer"], contact_interval=newer)).entries) == 3
    first = await read(campaigns, customer=h["customer"], page_size=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(campaigns, customer=h["customer"], page_size=1, page_token=first.next_page_token,
                   channel=campaign_pb2.CHANNEL_SMS)
    assert field_violations(caught.value) == {"page_token": "is not a token from this list with this filter"}


async def audit_rows(campaign_service: Any, customer: str, outcome: str) -> int:
    _, runtime = campaign_service
    async with runtime.db.engine.connect() as connection:
        return int((await connection.execute(sa.text(
            "SELECT count(*) FROM audit_record WHERE resource_name = :name AND outcome = :outcome "
            "AND action = 'contact_history.read'"), {"name": customer, "outcome": outcome})).scalar_one())


async def test_relationship_managers_read_their_own_book_only_and_every_read_is_audited(
        campaigns, campaign_service, history) -> None:
    customer = history["customer"]
    before = await audit_rows(campaign_service, customer, "ALLOWED")
    assert len((await read(campaigns, rm("rm-h"), customer=customer)).entries) == 4
    assert len((await read(campaigns, ANALYST, customer=customer)).entries) == 4
    assert await audit_rows(campaign_service, customer, "ALLOWED") == before + 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(campaigns, rm("rm-other"), customer=customer)
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_IN_BOOK")
    assert await audit_rows(campaign_service, customer, "DENIED") == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(campaigns, rm("rm-h"), customer="customers/nobody-knows")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, "an RM learns nothing outside the book"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(campaigns, MARKETER, customer="customers/nobody-knows")
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.NOT_FOUND, "CUSTOMER_NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(campaigns, bearer(Role.RISK_OFFICER, subject="risk-1"), customer=customer)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_bad_requests_name_every_field(campaigns, campaign_service) -> None:
    reversed_interval = interval_pb2.Interval(start_time=ago(1), end_time=ago(10))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.ListContactHistory(pb.ListContactHistoryRequest(
            campaign="campaigns/Bad_Name", channel=campaign_pb2.Channel.ValueType(42),
            contact_interval=reversed_interval), metadata=APP)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"customer", "campaign", "channel", "contact_interval",
                                                   "audit.purpose"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(campaigns, customer="people/1", page_size=-1)
    assert set(field_violations(caught.value)) == {"customer"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(campaigns, customer="customers/x", page_size=-1)
    assert set(field_violations(caught.value)) == {"page_size"}
