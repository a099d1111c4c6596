"""campaign-audience: BuildAudience for a segment of N customers (1,000,000 by default) through the
whole funnel and arbitration against two other running campaigns, against the hand-written SQL of
the same funnel's set-based work.

The campaign service runs as its own process (`python -m crm_campaign serve`) on a fresh, migrated
database, following no peer feed, with no dispatcher and no risk service: both offers of the
campaign under test are R1, which needs no suitability check (with risk absent, a riskier offer
would be SUITABILITY_UNKNOWN for everyone, the documented answer, and measure nothing). Its read
models are loaded by COPY as the peers' feeds would leave them (`load`): every customer in the
segment, with consents, contact preferences and time zones; a share on do-not-contact, with an
open complaint, without marketing consent, with no contact detail on the campaign's channels;
sent dispatches of an earlier (completed) campaign in the last week for the frequency cap across
campaigns; and the queued dispatches of two other RUNNING campaigns, one scoring above the
campaign under test (it loses those customers) and one below (its dispatches are displaced).

The campaign is created with its offers, submitted by one marketer and approved by another (four
eyes), launched without its first build; then a dry run and a real build, each timed from
BuildAudience to the operation's SUCCEEDED (polled every 20 ms). Headline: the real build's
seconds (goal <= 10 s at 1M). The floor: on one asyncpg connection, in a transaction rolled back,
one `INSERT INTO audience_member ... SELECT` of the customers who survive the same suppressions as
anti-joins (no suppressed rows, no dispatches, no control split: only the set-based work).

N is `CRM_BENCH_CAMPAIGN_CUSTOMERS` (e.g. 100000 for a quick run).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from google.type import dayofweek_pb2, decimal_pb2, interval_pb2, money_pb2, timeofday_pb2

from bench.campaign_nba import service_env as nba_service_env
from bench.environment import free_port, run_to_completion, size_from_env
from bench.harness import BenchRun
from crm.campaign.v1 import audience_pb2, campaign_pb2, campaign_service_pb2_grpc
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import operation_pb2, product_risk_pb2
from crm_campaign.audience.inputs import PENDING, PLANNED_OR_MADE
from crm_campaign.campaigns.model import (
    Campaign,
    CampaignState,
    CampaignType,
    Channel,
    ContactPolicy,
    Interval,
    Money,
)
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.dispatch.model import DispatchState
from crm_campaign.offers.model import ChannelContent, Offer
from crm_campaign.offers.repository import OfferRepository
from crmkit.auth import Role, issue_token
from crmkit.db import Database
from crmkit.settings import plain_database_url

DEFAULT_CUSTOMERS = 1_000_000
CUSTOMERS_VARIABLE = "CRM_BENCH_CAMPAIGN_CUSTOMERS"
COPY_BATCH = 100_000
SEGMENT = "bench-audience"
SMS, APP, EMAIL = int(Channel.SMS), int(Channel.MOBILE_APP), int(Channel.EMAIL)
CAP_CONTACTS, CAP_DAYS = 2, 7
# Shares of the segment each suppression or rival touches (drawn independently per customer).
DO_NOT_CONTACT, COMPLAINT, NO_CONSENT, UNREACHABLE = 0.05, 0.02, 0.05, 0.03
SENT_ONCE, SENT_TWICE = 0.15, 0.08  # sent by the earlier campaign this week; twice reaches the cap
RIVAL_STRONG, RIVAL_WEAK = 0.10, 0.15  # queued by a rival scoring above / below the campaign's best offer
# The campaign's best offer scores priority x value x the default response rate: 70 x 1200 x 0.05.
BEST_SCORE = 70 * 1200 * 0.05
STRONG_SCORE, WEAK_SCORE = 10_000.0, 1_000.0
ZONES = ("Asia/Shanghai", "Asia/Hong_Kong", "Europe/London")
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 3_600.0
MARKETER_A, MARKETER_B = "bench-marketer-a", "bench-marketer-b"


def customer_count() -> int:
    return size_from_env(CUSTOMERS_VARIABLE, DEFAULT_CUSTOMERS, minimum=1_000)


def service_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    """campaign-nba's deployment settings (no peers, no dispatcher), with SMS templates too."""
    return {**nba_service_env(database_url, port, jwt_secret),
            "CRM_CAMPAIGN_TEMPLATES": '{"SMS": ["sms-1"], "MOBILE_APP": ["app-1"]}',
            "CRM_CAMPAIGN_OPERATION_POLL_SECONDS": "0.05"}


def _batches(rows: Iterator[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    while batch := [row for _, row in zip(range(COPY_BATCH), rows, strict=False)]:
        yield batch


async def load(bench: BenchRun, database_url: str, count: int) -> None:
    """The rival, earlier campaigns and their offers through the repositories; read models and
    dispatches by COPY (seeded: every run sees the same customers)."""
    now = datetime.now(UTC)
    rng = random.Random(23)
    db = await Database.open(database_url, pool_size=2)
    try:
        async with db.unit_of_work() as uow:
            for campaign_id, state in (("rival-strong", CampaignState.RUNNING), ("rival-weak", CampaignState.RUNNING),
                                       ("earlier", CampaignState.COMPLETED)):
                await CampaignRepository().insert(uow, Campaign(
                    campaign_id=campaign_id, display_name=campaign_id, type=int(CampaignType.BATCH), state=state,
                    segment=f"segments/{SEGMENT}", active_period=Interval(now - timedelta(days=10),
                                                                          now + timedelta(days=30)),
                    contact_policy=ContactPolicy(channels=(SMS, APP)), control_seed=rng.randrange(2 ** 62),
                    creator="bench", launched_at=now - timedelta(days=9)))
                await OfferRepository().insert(uow, Offer(
                    campaign_id=campaign_id, offer_id="offer", display_name=campaign_id, product_code="TD-1Y",
                    product_risk_level=1, priority=50, expected_value=Money("CNY", Decimal(1000)),
                    contents=(ChannelContent(SMS, "sms-1", ""),)))
    finally:
        await db.dispose()
    members, contacts, complaints, dispatches = [], [], [], []
    for i in range(count):
        customer = f"A{i:08d}"
        members.append((SEGMENT, customer, now))
        consented = [] if rng.random() < NO_CONSENT else [SMS, APP, EMAIL]
        reachable = [EMAIL] if rng.random() < UNREACHABLE else [SMS, APP]
        contacts.append((customer, rng.random() < DO_NOT_CONTACT, consented, reachable,
                         rng.choice((0, SMS, APP)), rng.choice(ZONES), [], now))
        if rng.random() < COMPLAINT:
            complaints.append((f"cmp-{i}", customer, now - timedelta(days=3)))
        sent = 2 if (draw := rng.random()) < SENT_TWICE else 1 if draw < SENT_TWICE + SENT_ONCE else 0
        for k in range(sent):
            at = now - timedelta(days=1 + k, hours=rng.randint(0, 20))
            dispatches.append((f"e-{i}-{k}", "earlier", customer, "offer", (SMS, APP)[k], int(DispatchState.SENT), None,
                               at, at))
        if (draw := rng.random()) < RIVAL_STRONG + RIVAL_WEAK:
            strong = draw < RIVAL_STRONG
            dispatches.append((f"r-{i}", "rival-strong" if strong else "rival-weak", customer, "offer", SMS,
                               int(DispatchState.QUEUED), STRONG_SCORE if strong else WEAK_SCORE,
                               now - timedelta(hours=2), None))
    connection = await asyncpg.connect(plain_database_url(database_url))
    try:
        for table, records, columns in (
                ("segment_member", members, ["segment_id", "customer_id", "updated_at"]),
                ("customer_contact", contacts, ["customer_id", "do_not_contact", "consented_channels",
                                                "reachable_channels", "preferred_channel", "time_zone",
                                                "held_products", "updated_at"]),
                ("open_complaint", complaints, ["complaint_id", "customer_id", "opened_at"]),
                ("dispatch", dispatches, ["dispatch_id", "campaign_id", "customer_id", "offer_id", "channel",
                                          "state", "arbitration_score", "created_at", "sent_at"])):
            for batch in _batches(iter(records)):
                await connection.copy_records_to_table(table, records=batch, columns=columns)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    bench.note(f"{count:,} customers in segment {SEGMENT}, {len(complaints):,} open complaints, "
               f"{len(dispatches):,} dispatches of the earlier and rival campaigns")


def campaign_under_test(now: datetime) -> tuple[campaign_pb2.Campaign, list[campaign_pb2.Offer]]:
    """A batch campaign on the segment: SMS then the app, a cap of 2 a week across campaigns,
    quiet 21:00 to 08:00 in the customer's zone and on Sundays, a 10 % control group, no contact
    limit; two R1 offers (no suitability check)."""
    def cny(units: int) -> money_pb2.Money:
        return money_pb2.Money(currency_code="CNY", units=units)

    start, end = now - timedelta(hours=1), now + timedelta(days=30)
    campaign = campaign_pb2.Campaign(
        campaign_id="bench-audience", display_name="Bench audience", type=campaign_pb2.CAMPAIGN_TYPE_BATCH,
        segment=f"segments/{SEGMENT}",
        active_period=interval_pb2.Interval(start_time=_timestamp(start), end_time=_timestamp(end)),
        contact_policy=campaign_pb2.ContactPolicy(
            channels=[campaign_pb2.CHANNEL_SMS, campaign_pb2.CHANNEL_MOBILE_APP],
            channel_strategy=campaign_pb2.CHANNEL_STRATEGY_FIXED_ORDER,
            frequency_caps=[campaign_pb2.FrequencyCap(
                max_contacts=CAP_CONTACTS, period=duration_pb2.Duration(seconds=CAP_DAYS * 86400),
                scope=campaign_pb2.FREQUENCY_CAP_SCOPE_ALL_CAMPAIGNS)],
            quiet_hours=campaign_pb2.QuietHours(start=timeofday_pb2.TimeOfDay(hours=21),
                                                end=timeofday_pb2.TimeOfDay(hours=8),
                                                quiet_days=[dayofweek_pb2.SUNDAY])),
        control_group=campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="10")),
        max_contacts=0, fixed_cost=cny(20_000))
    offers = [campaign_pb2.Offer(
        offer_id=offer_id, display_name=offer_id, product_code=f"TD-{offer_id}",
        product_risk_level=product_risk_pb2.PRODUCT_RISK_LEVEL_R1, priority=priority, expected_value=cny(value),
        contents=[campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_SMS, template_id="sms-1"),
                  campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_MOBILE_APP, template_id="app-1",
                                              headline=offer_id)])
        for offer_id, priority, value in (("td-3y", 70, 1_200), ("td-1y", 60, 800))]
    return campaign, offers


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def floor_seconds(database_url: str, campaign_id: str) -> tuple[float, int]:
    """The surviving customers in one INSERT ... SELECT with the suppressions as anti-joins, rolled
    back: seconds and rows."""
    statement = """
        WITH capped AS (
                 SELECT customer_id FROM dispatch
                 WHERE state = ANY($8::smallint[]) AND coalesce(sent_at, created_at) > now() - make_interval(days => $5)
                 GROUP BY customer_id HAVING count(*) >= $6),
             beaten AS (
                 SELECT d.customer_id FROM dispatch d JOIN campaign k ON k.campaign_id = d.campaign_id
                 WHERE d.campaign_id <> $1 AND k.state = $9 AND d.state = ANY($10::smallint[])
                   AND d.arbitration_score >= $7)
        INSERT INTO audience_member (campaign_id, customer_id, "group", offer_id, channel, segment, created_at)
        SELECT $1, m.customer_id, 1, 'td-3y', c.consented_channels[1], $2, now()
        FROM segment_member m JOIN customer_contact c ON c.customer_id = m.customer_id
        WHERE m.segment_id = $3 AND NOT c.do_not_contact
          AND c.consented_channels && $4::smallint[] AND c.reachable_channels && $4::smallint[]
          AND NOT EXISTS (SELECT 1 FROM open_complaint o WHERE o.customer_id = m.customer_id)
          AND NOT EXISTS (SELECT 1 FROM capped x WHERE x.customer_id = m.customer_id)
          AND NOT EXISTS (SELECT 1 FROM beaten b WHERE b.customer_id = m.customer_id)"""
    connection = await asyncpg.connect(plain_database_url(database_url))
    try:
        transaction = connection.transaction()
        await transaction.start()
        started = time.perf_counter()
        status = await connection.execute(statement, campaign_id, f"segments/{SEGMENT}", SEGMENT, [SMS, APP],
                                          CAP_DAYS, CAP_CONTACTS, BEST_SCORE, list(PLANNED_OR_MADE),
                                          int(CampaignState.RUNNING), list(PENDING))
        elapsed = time.perf_counter() - started
        await transaction.rollback()
        await connection.execute("VACUUM ANALYZE audience_member")
    finally:
        await connection.close()
    return elapsed, int(status.split()[-1])


async def build(stub: campaign_service_pb2_grpc.CampaignServiceStub, name: str, *, dry_run: bool,
                metadata: tuple[tuple[str, str], ...]) -> tuple[float, audience_pb2.AudienceBuild]:
    """Seconds from BuildAudience to SUCCEEDED, and the build."""
    started = time.perf_counter()
    response = await stub.BuildAudience(pb.BuildAudienceRequest(name=name, dry_run=dry_run,
                                                                request_id=str(uuid.uuid4())), metadata=metadata)
    operation = response.operation
    while operation.state not in (operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
                                  operation_pb2.OPERATION_STATE_CANCELLED):
        if time.perf_counter() - started > TIMEOUT_SECONDS:
            raise TimeoutError("the audience build did not finish")
        await asyncio.sleep(POLL_SECONDS)
        operation = (await stub.GetOperation(pb.GetOperationRequest(name=operation.name),
                                             metadata=metadata)).operation
    elapsed = time.perf_counter() - started
    if operation.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        raise AssertionError(f"the audience build ended {operation.state}: {operation.error.message}")
    result = audience_pb2.AudienceBuild()
    operation.response.Unpack(result)
    return elapsed, result


def funnel_note(result: audience_pb2.AudienceBuild) -> str:
    reasons = ", ".join(f"{audience_pb2.SuppressionReason.Name(c.reason).removeprefix('SUPPRESSION_REASON_')}="
                        f"{c.count:,}" for c in result.suppression_counts if c.count)
    return (f"{result.candidate_count:,} candidates, {result.eligible_count:,} eligible "
            f"({result.target_count:,} target, {result.control_count:,} control), "
            f"{result.collision_count:,} collisions; suppressed: {reasons}")


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)

    def bearer(subject: str) -> tuple[tuple[str, str], ...]:
        token = issue_token(secret=jwt_secret, subject=subject, roles=[Role.MARKETER], lifetime_seconds=6 * 3600)
        return (("authorization", f"Bearer {token}"),)

    first, second = bearer(MARKETER_A), bearer(MARKETER_B)
    count = customer_count()
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_campaign", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        await load(bench, database_url, count)
        async with (bench.server("campaign", [sys.executable, "-m", "crm_campaign", "serve"], env=env,
                                 port=port) as address,
                    grpc.aio.insecure_channel(address) as channel):
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign, offers = campaign_under_test(datetime.now(UTC))
            created = (await stub.CreateCampaign(pb.CreateCampaignRequest(campaign=campaign),
                                                 metadata=first)).campaign
            for offer in offers:
                await stub.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=offer), metadata=first)
            await stub.SubmitCampaign(pb.SubmitCampaignRequest(name=created.name), metadata=first)
            await stub.ApproveCampaign(pb.ApproveCampaignRequest(name=created.name), metadata=second)
            await stub.LaunchCampaign(pb.LaunchCampaignRequest(name=created.name, defer_audience_build=True),
                                      metadata=first)

            floor, surviving = await floor_seconds(database_url, campaign.campaign_id)
            bench.note(f"hand-written funnel: {floor:.2f} s, {surviving:,} surviving customers")
            dry_seconds, dry = await build(stub, created.name, dry_run=True, metadata=first)
            bench.note(f"dry run: {dry_seconds:.2f} s, {funnel_note(dry)}")
            real_seconds, real = await build(stub, created.name, dry_run=False, metadata=first)
            bench.note(f"build: {real_seconds:.2f} s, {funnel_note(real)}")
            if real.candidate_count != count or real.eligible_count != surviving:
                raise AssertionError(f"the build found {real.candidate_count} candidates and {real.eligible_count} "
                                     f"eligible; expected {count} and the floor's {surviving}")
            bench.emit("build_seconds", real_seconds, "s", floor=floor, headline=True)
            bench.emit("dry_run_seconds", dry_seconds, "s", floor=floor)
            bench.emit("candidates_per_s", count / real_seconds, "customers/s", floor=count / floor)
            bench.emit("customers", count, "customers")
            bench.emit("eligible", real.eligible_count, "customers")
