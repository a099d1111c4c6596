"""campaign-trigger: a holding matures in profile -> the triggered offer's dispatch recorded in
campaign, end to end through real processes.

Profile and campaign run as their own processes (`python -m crm_profile serve`, `python -m
crm_campaign serve` following profile's WatchChanges, its dispatcher writing through the file
adapter), each on a fresh database, with the feeds' default poll intervals. Set-up through the
RPCs: a RUNNING triggered campaign with one R1 offer on SMS and a trigger rule (term deposits of
`TD-1Y-CNY` of at least CNY 10,000 maturing within 14 days -> that offer); N customers, each
opted in to SMS marketing, each with a deposit maturing in 60 days (outside the lead time, so
nothing fires). Then, one change at a time, core banking moves a customer's deposit to mature
today (`UpdateHolding`: maturity date and status MATURED). The bench watches both feeds:

- path: from the UpdateHolding request to the arrival of that customer's dispatch (CREATED,
  queued) on campaign's own feed: profile's write and outbox, profile's feed, campaign's
  follower (contact read model, the firing record, cool-down claim, the one-customer funnel,
  the dispatch row and its feed event in the cursor's transaction), campaign's feed.
  Headline: its p95 (goal <= 2 s).
- floor: from the same request to the arrival of the holding's change on profile's feed, as a
  bare WatchChanges consumer (the bench) receives it: profile's write plus a feed delivery,
  the part of the path no campaign code can shorten. Measured on the same changes.
- information: to the dispatch's SENT update on campaign's feed (the dispatcher's poll and the
  file adapter's fsync).

`CRM_BENCH_TRIGGER_CHANGES` sets the number of changes (= customers; default 200).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta

import grpc
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, interval_pb2, money_pb2

from bench import profile_service
from bench.environment import free_port, run_to_completion, size_from_env
from bench.harness import BenchRun, percentile
from crm.campaign.v1 import audience_pb2, campaign_pb2, campaign_service_pb2_grpc, trigger_pb2
from crm.campaign.v1 import campaign_service_pb2 as cpb
from crm.common.v1 import audit_pb2, change_event_pb2, product_risk_pb2
from crm.profile.v1 import consent_pb2, customer_pb2, holding_pb2, profile_service_pb2, profile_service_pb2_grpc
from crmkit.auth import Role, issue_token

DEFAULT_CHANGES = 200
CHANGES_VARIABLE = "CRM_BENCH_TRIGGER_CHANGES"
ARRIVAL_TIMEOUT_SECONDS = 60.0
CALL_TIMEOUT_SECONDS = 30.0
PRODUCT = "TD-1Y-CNY"
HOLDING_TYPE = "crm.profile.v1.Holding"
DISPATCH_TYPE = "crm.campaign.v1.Dispatch"
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="core banking")
Metadata = tuple[tuple[str, str], ...]


def change_count() -> int:
    return size_from_env(CHANGES_VARIABLE, DEFAULT_CHANGES)


def customer_id(i: int) -> str:
    return f"TRIG{i:06d}"


def campaign_env(database_url: str, port: int, jwt_secret: str, profile_port: int, outbox: str) -> dict[str, str]:
    """Campaign's settings as a deployment sets them: following profile only, SMS by the file adapter."""
    return {**os.environ, "CRM_ENV": "development", "CRM_HOST": "127.0.0.1", "CRM_JWT_SECRET": jwt_secret,
            "CRM_SHUTDOWN_GRACE_SECONDS": "2", "CRM_CAMPAIGN_DATABASE_URL": database_url,
            "CRM_CAMPAIGN_PORT": str(port), "CRM_CAMPAIGN_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
            "CRM_CAMPAIGN_SEGMENT_TARGET": "", "CRM_CAMPAIGN_FEEDBACK_TARGET": "", "CRM_CAMPAIGN_RISK_TARGET": "",
            "CRM_CAMPAIGN_FEED_MAX_BACKOFF_SECONDS": "0.5", "CRM_CAMPAIGN_TEMPLATES": json.dumps({"SMS": ["sms-td"]}),
            "CRM_CAMPAIGN_CHANNEL_ADAPTERS": json.dumps({"SMS": "file"}), "CRM_CAMPAIGN_DISPATCH_DIRECTORY": outbox}


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)

    def bearer(role: Role, subject: str) -> Metadata:
        token = issue_token(secret=jwt_secret, subject=subject, roles=[role], lifetime_seconds=6 * 3600)
        return (("authorization", f"Bearer {token}"),)

    tokens = {"admin": bearer(Role.ADMIN, "bench-admin"), "service": bearer(Role.SERVICE, "core-banking"),
              "marketer_a": bearer(Role.MARKETER, "bench-marketer-a"),
              "marketer_b": bearer(Role.MARKETER, "bench-marketer-b")}
    async with bench.database() as profile_url, bench.database() as campaign_url:
        profile_port, campaign_port = free_port(), free_port()
        with tempfile.TemporaryDirectory(prefix="bench-trigger-") as outbox:
            profile_env = profile_service.service_env(profile_url, profile_port, jwt_secret)
            env = campaign_env(campaign_url, campaign_port, jwt_secret, profile_port, outbox)
            bench.note("migrating two fresh databases")
            await run_to_completion([sys.executable, "-m", "crm_profile", "migrate"], env=profile_env,
                                    log_path=bench.log_path("migrate-profile"))
            await run_to_completion([sys.executable, "-m", "crm_campaign", "migrate"], env=env,
                                    log_path=bench.log_path("migrate-campaign"))
            async with (bench.server("profile", [sys.executable, "-m", "crm_profile", "serve"], env=profile_env,
                                     port=profile_port) as profile_address,
                        bench.server("campaign", [sys.executable, "-m", "crm_campaign", "serve"], env=env,
                                     port=campaign_port) as campaign_address,
                        grpc.aio.insecure_channel(profile_address) as profile_channel,
                        grpc.aio.insecure_channel(campaign_address) as campaign_channel):
                profile = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)
                campaigns = campaign_service_pb2_grpc.CampaignServiceStub(campaign_channel)
                changes = change_count()
                holdings = await set_up(bench, profile, campaigns, tokens, changes)
                await measure(bench, profile, campaigns, tokens, holdings)


async def set_up(bench: BenchRun, profile: profile_service_pb2_grpc.ProfileServiceStub,
                 campaigns: campaign_service_pb2_grpc.CampaignServiceStub, tokens: dict[str, Metadata],
                 changes: int) -> list[str]:
    """The running triggered campaign and its rule; the customers with consent and a deposit
    maturing in 60 days. Returns the holdings' names, in customer order."""
    now = datetime.now(UTC)
    draft = (await campaigns.CreateCampaign(cpb.CreateCampaignRequest(campaign=campaign_pb2.Campaign(
        campaign_id="bench-trigger", display_name="Maturing deposits", type=campaign_pb2.CAMPAIGN_TYPE_TRIGGERED,
        active_period=interval_pb2.Interval(start_time=_at(now - timedelta(hours=1)),
                                            end_time=_at(now + timedelta(days=30))),
        contact_policy=campaign_pb2.ContactPolicy(channels=[campaign_pb2.CHANNEL_SMS]),
        max_contacts=changes + 10)), metadata=tokens["marketer_a"])).campaign
    offer = (await campaigns.CreateOffer(cpb.CreateOfferRequest(parent=draft.name, offer=campaign_pb2.Offer(
        offer_id="renew", display_name="Renew at 2.6 %", product_code=PRODUCT,
        product_risk_level=product_risk_pb2.PRODUCT_RISK_LEVEL_R1, priority=60,
        expected_value=money_pb2.Money(currency_code="CNY", units=800),
        contents=[campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_SMS, template_id="sms-td",
                                              headline="Renew your deposit")])), metadata=tokens["marketer_a"])).offer
    await campaigns.SubmitCampaign(cpb.SubmitCampaignRequest(name=draft.name), metadata=tokens["marketer_a"])
    await campaigns.ApproveCampaign(cpb.ApproveCampaignRequest(name=draft.name), metadata=tokens["marketer_b"])
    await campaigns.LaunchCampaign(cpb.LaunchCampaignRequest(name=draft.name), metadata=tokens["marketer_a"])
    await campaigns.CreateTriggerRule(cpb.CreateTriggerRuleRequest(trigger_rule=trigger_pb2.TriggerRule(
        trigger_rule_id="bench-maturing", display_name="Deposit maturing: renew",
        product_maturity=trigger_pb2.ProductMaturityCondition(
            product_codes=[PRODUCT], lead_time=duration_pb2.Duration(seconds=14 * 86400),
            min_amount=money_pb2.Money(currency_code="CNY", units=10_000)),
        offer_action=trigger_pb2.OfferAction(campaign=draft.name, offer=offer.name))), metadata=tokens["marketer_a"])

    today = now.date()
    holdings = []
    consent = consent_pb2.ConsentRecord(
        purpose=consent_pb2.CONSENT_PURPOSE_MARKETING, channel=consent_pb2.CONTACT_CHANNEL_SMS,
        decision=consent_pb2.CONSENT_DECISION_OPT_IN, evidence=consent_pb2.ConsentEvidence(
            source=consent_pb2.CONSENT_SOURCE_BRANCH_FORM, effective_time=_at(now - timedelta(days=1)),
            text_version="MKT-1", recorded_by="emp-1"))
    for i in range(changes):
        name = f"customers/{customer_id(i)}"
        await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(customer_id=customer_id(i), full_name="Wang Fang", branch_id="br-1",
                                           customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
            request_id=str(uuid.uuid4())), metadata=tokens["admin"], timeout=CALL_TIMEOUT_SECONDS)
        await profile.RecordConsent(consent_pb2.RecordConsentRequest(parent=name, audit=AUDIT, consents=[consent]),
                                    metadata=tokens["admin"], timeout=CALL_TIMEOUT_SECONDS)
        created = await profile.CreateHolding(holding_pb2.CreateHoldingRequest(
            parent=name, audit=AUDIT, request_id=str(uuid.uuid4()), holding=holding_pb2.Holding(
                holding_id=f"TD{i:06d}", product_code=PRODUCT, product_type=holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT,
                currency="CNY", balance=money_pb2.Money(currency_code="CNY", units=50_000),
                open_date=_day(today - timedelta(days=305)), maturity_date=_day(today + timedelta(days=60)),
                status=holding_pb2.HOLDING_STATUS_ACTIVE, source_system="core-banking")),
            metadata=tokens["service"], timeout=CALL_TIMEOUT_SECONDS)
        holdings.append(created.holding.name)
    bench.note(f"{changes} customers with SMS consent and a deposit maturing in 60 days")
    return holdings


async def measure(bench: BenchRun, profile: profile_service_pb2_grpc.ProfileServiceStub,
                  campaigns: campaign_service_pb2_grpc.CampaignServiceStub, tokens: dict[str, Metadata],
                  holdings: list[str]) -> None:
    loop = asyncio.get_running_loop()
    # What each change waits for, by key: ("holding", name) on profile's feed, ("queued" | "sent",
    # customer) on campaign's; the future gets the arrival time.
    waiting: dict[tuple[str, str], asyncio.Future[float]] = {}

    def arrived(key: tuple[str, str], at: float) -> None:
        future = waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(at)

    async def watch_profile() -> None:
        # From the oldest retained event: the set-up's events resolve nothing.
        stream = profile.WatchChanges(profile_service_pb2.WatchChangesRequest(resource_types=[HOLDING_TYPE]),
                                      metadata=tokens["service"])
        async for response in stream:
            at = time.perf_counter()
            for event in response.events:
                arrived(("holding", event.resource_name), at)

    async def watch_campaign() -> None:
        stream = campaigns.WatchChanges(cpb.WatchChangesRequest(resource_types=[DISPATCH_TYPE]),
                                        metadata=tokens["service"])
        async for response in stream:
            at = time.perf_counter()
            for event in response.events:
                dispatch = audience_pb2.Dispatch()
                event.payload.Unpack(dispatch)
                if event.change_type == change_event_pb2.CHANGE_TYPE_CREATED:
                    arrived(("queued", dispatch.customer), at)
                elif dispatch.state == audience_pb2.DISPATCH_STATE_SENT:
                    arrived(("sent", dispatch.customer), at)

    watchers = [asyncio.create_task(watch_profile()), asyncio.create_task(watch_campaign())]
    to_queued: list[float] = []
    to_feed: list[float] = []
    to_sent: list[float] = []
    acks: list[float] = []
    today = _day(datetime.now(UTC).date())
    try:
        await asyncio.sleep(1.0)  # both streams are open and have read their backlogs
        for i, holding in enumerate(holdings):
            customer = f"customers/{customer_id(i)}"
            futures = {kind: loop.create_future() for kind in ("holding", "queued", "sent")}
            waiting[("holding", holding)] = futures["holding"]
            waiting[("queued", customer)] = futures["queued"]
            waiting[("sent", customer)] = futures["sent"]
            request = holding_pb2.UpdateHoldingRequest(
                holding=holding_pb2.Holding(name=holding, maturity_date=today,
                                            status=holding_pb2.HOLDING_STATUS_MATURED),
                update_mask=field_mask_pb2.FieldMask(paths=["maturity_date", "status"]), audit=AUDIT)
            started = time.perf_counter()
            await profile.UpdateHolding(request, metadata=tokens["service"], timeout=CALL_TIMEOUT_SECONDS)
            acks.append(time.perf_counter() - started)
            feed_at, queued_at, sent_at = await asyncio.wait_for(
                asyncio.gather(futures["holding"], futures["queued"], futures["sent"]),
                timeout=ARRIVAL_TIMEOUT_SECONDS)
            to_feed.append(feed_at - started)
            to_queued.append(queued_at - started)
            to_sent.append(sent_at - started)
    finally:
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await watcher
    for values in (to_queued, to_feed, to_sent, acks):
        values.sort()

    def ms(values: list[float], p: float) -> float:
        return percentile(values, p) * 1000

    bench.note(f"{len(holdings)} maturities: to the dispatch recorded p50 {ms(to_queued, 50):.0f} ms, "
               f"p95 {ms(to_queued, 95):.0f} ms, max {to_queued[-1] * 1000:.0f} ms; floor (UpdateHolding + "
               f"profile feed) p50 {ms(to_feed, 50):.0f} ms, p95 {ms(to_feed, 95):.0f} ms; UpdateHolding p95 "
               f"{ms(acks, 95):.0f} ms; to SENT p95 {ms(to_sent, 95):.0f} ms; load average {os.getloadavg()[0]:.1f}")
    bench.emit("maturity_to_dispatch_p50_ms", ms(to_queued, 50), "ms", floor=ms(to_feed, 50))
    bench.emit("maturity_to_dispatch_p95_ms", ms(to_queued, 95), "ms", floor=ms(to_feed, 95), headline=True)
    bench.emit("maturity_to_dispatch_p99_ms", ms(to_queued, 99), "ms", floor=ms(to_feed, 99))
    bench.emit("maturity_to_sent_p95_ms", ms(to_sent, 95), "ms", floor=ms(to_feed, 95))
    bench.emit("update_holding_p95_ms", ms(acks, 95), "ms")
    bench.emit("changes", len(holdings), "changes")


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)
