"""campaign-nba: GetNextBestAction latency at concurrency 4 and throughput at 16, against the bare gRPC call.

The campaign service runs as its own process (`python -m crm_campaign serve`, following no peer
feed, no dispatcher, no risk service) on a fresh, migrated database holding what its read models
and its own records would: 20 running campaigns on 10 segments with 2 offers each (all R1, so no
suitability call; a risk call is a peer's latency, not campaign's), and 20,000 customers with
marketing consent for the app, each in 3 segments, a quarter with a planned dispatch of some
campaign (a rival in arbitration) and a tenth with an offer shown in the last day (a contact
under the caps). Half the offers name one of two offer types, each with a registered response-
propensity model (trained here on 2,000 synthetic calls), and every customer has modelling
features (one of 4 occupations, a boolean attribute), so those offers are scored by their model on
the asking channel (warm: 8 kinds of customer, answers kept after the first). A channel
application then asks for the next best action of random customers on
the app: every answer reads the customer, runs each candidate offer through the audience funnel,
stores the decision and writes an audit record before it returns. Driven in alternating slices
with the bare gRPC floor at the same concurrency. Headline: p99 ms at concurrency 4 (goal <= 30).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import grpc

from bench.environment import free_port, run_to_completion
from bench.floors import bare_grpc_call, bare_grpc_server
from bench.harness import BenchRun, LoadResult, drive_alternating
from crm.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2
from crm_campaign.campaigns.model import (
    Campaign,
    CampaignState,
    CampaignType,
    Channel,
    ContactPolicy,
    FrequencyCap,
    FrequencyCapScope,
    Interval,
    Money,
)
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.offers.model import ChannelContent, Offer
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.propensity import training
from crm_campaign.propensity.model import TrainedModel, TrainingParams, TrainingRow
from crm_campaign.propensity.repository import PropensityRepository
from crmkit.auth import Role, issue_token
from crmkit.db import Database
from crmkit.settings import plain_database_url

CUSTOMERS = 20_000
SEGMENTS = 10
CAMPAIGNS = 20
SEGMENTS_PER_CUSTOMER = 3
CONCURRENCIES = (4, 16)
LATENCY_CONCURRENCY, THROUGHPUT_CONCURRENCY = 4, 16
WARMUP_SECONDS = 1.0
ROUNDS = 5
CALL_TIMEOUT_SECONDS = 10.0
SMS, APP = int(Channel.SMS), int(Channel.MOBILE_APP)
OFFER_TYPES = ("bench-deposit", "bench-loan")
OCCUPATIONS = ("student", "technician", "admin", "retired")


def synthetic_model(seed: int) -> TrainedModel:
    """A calibrated model of 2,000 synthetic calls: occupation, a loan flag and the channel matter."""
    rng = random.Random(seed)
    rows = []
    for i in range(2_000):
        job, loan, channel = rng.choice(OCCUPATIONS), rng.random() < 0.3, rng.choice([SMS, APP])
        chance = 0.05 + 0.1 * OCCUPATIONS.index(job) + (0.2 if loan else 0.0) + (0.1 if channel == APP else 0.0)
        rows.append(TrainingRow(customer_id=f"h{i}", accepted=rng.random() < chance, fields={"channel": channel},
                                context={}, customer={"occupation": job, "attributes.has_loan": loan}))
    return training.train(training.TrainingJob(params=TrainingParams("bench", 0.2, seed), rows=rows))


def service_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    """The campaign service's settings, as a deployment would set them, with no peers to follow."""
    return {**os.environ, "CRM_ENV": "development", "CRM_HOST": "127.0.0.1", "CRM_JWT_SECRET": jwt_secret,
            "CRM_SHUTDOWN_GRACE_SECONDS": "2", "CRM_CAMPAIGN_DATABASE_URL": database_url,
            "CRM_CAMPAIGN_PORT": str(port), "CRM_CAMPAIGN_PROFILE_TARGET": "", "CRM_CAMPAIGN_SEGMENT_TARGET": "",
            "CRM_CAMPAIGN_FEEDBACK_TARGET": "", "CRM_CAMPAIGN_RISK_TARGET": "",
            "CRM_CAMPAIGN_DISPATCHER_ENABLED": "false", "CRM_CAMPAIGN_TEMPLATES": '{"MOBILE_APP": ["app-1"]}'}


async def load(database_url: str) -> list[str]:
    """Campaigns and offers through the service's repositories; read models and history by COPY."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    db = await Database.open(database_url, pool_size=2)
    try:
        async with db.unit_of_work() as uow:
            for n in range(CAMPAIGNS):
                campaign_id = f"bench-nba-{n:02d}"
                await CampaignRepository().insert(uow, Campaign(
                    campaign_id=campaign_id, display_name=f"Bench {n}", type=int(CampaignType.BATCH),
                    state=CampaignState.RUNNING, segment=f"segments/seg-{n % SEGMENTS}",
                    active_period=Interval(now - timedelta(days=1), now + timedelta(days=30)),
                    contact_policy=ContactPolicy(channels=(SMS, APP), frequency_caps=(FrequencyCap(
                        max_contacts=3, period=timedelta(days=7), scope=int(FrequencyCapScope.ALL_CAMPAIGNS)),)),
                    control_seed=rng.randrange(2 ** 62), creator="bench", launched_at=now))
                for k in range(2):
                    await OfferRepository().insert(uow, Offer(
                        campaign_id=campaign_id, offer_id=f"offer-{k}", display_name=f"Offer {n}-{k}",
                        product_code=f"TD-{n}-{k}", product_risk_level=1, priority=rng.randint(10, 100),
                        expected_value=Money("CNY", Decimal(rng.randint(100, 3000))),
                        contents=(ChannelContent(APP, "app-1", f"Offer {n}-{k}"),),
                        offer_type=OFFER_TYPES[n % 2] if k == 0 else ""))
        async with db.raw() as connection:
            for seed, offer_type in enumerate(OFFER_TYPES):
                await PropensityRepository().insert(connection, params=TrainingParams(offer_type, 0.2, seed),
                                                    trained=synthetic_model(seed), creator="bench")
    finally:
        await db.dispose()
    customers = [f"N{i:07d}" for i in range(CUSTOMERS)]
    members = [(f"seg-{s}", c) for c in customers for s in rng.sample(range(SEGMENTS), SEGMENTS_PER_CUSTOMER)]
    contacts = [(c, False, [SMS, APP], [SMS, APP], APP, "Asia/Shanghai", [], now) for c in customers]
    rivals = [(f"d{i:07d}", f"bench-nba-{rng.randrange(CAMPAIGNS):02d}", c, "offer-0", SMS, 1, now)
              for i, c in enumerate(customers) if rng.random() < 0.25]
    shown = [(f"r{i:07d}", f"bench-nba-{rng.randrange(CAMPAIGNS):02d}", c, "offer-1", APP, 1,
              now - timedelta(hours=rng.randint(1, 20)), "bench", now)
             for i, c in enumerate(customers) if rng.random() < 0.1]
    connection = await asyncpg.connect(plain_database_url(database_url))
    try:
        await connection.copy_records_to_table("segment_member", records=[(*m, now) for m in members],
                                               columns=["segment_id", "customer_id", "updated_at"])
        await connection.copy_records_to_table(
            "customer_contact", records=contacts,
            columns=["customer_id", "do_not_contact", "consented_channels", "reachable_channels",
                     "preferred_channel", "time_zone", "held_products", "updated_at"])
        await connection.copy_records_to_table(
            "dispatch", records=rivals,
            columns=["dispatch_id", "campaign_id", "customer_id", "offer_id", "channel", "state", "created_at"])
        await connection.copy_records_to_table(
            "customer_feature", columns=["customer_id", "features", "event_at"],
            records=[(c, json.dumps({"occupation": OCCUPATIONS[i % 4], "attributes.has_loan": i % 3 == 0}), now)
                     for i, c in enumerate(customers)])
        await connection.copy_records_to_table(
            "offer_response", records=shown,
            columns=["response_id", "campaign_id", "customer_id", "offer_id", "channel", "type", "response_time",
                     "recorder", "created_at"])
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return customers


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    token = issue_token(secret=jwt_secret, subject="counter-app", roles=[Role.CHANNEL_APP], lifetime_seconds=6 * 3600)
    metadata = (("authorization", f"Bearer {token}"),)
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_campaign", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        customers = await load(database_url)
        bench.note(f"{CAMPAIGNS} running campaigns, {len(customers)} customers in the read models")
        rng = random.Random(5)
        audit = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
        asks = [pb.GetNextBestActionRequest(customer=f"customers/{rng.choice(customers)}",
                                            channel=campaign_pb2.CHANNEL_MOBILE_APP, audit=audit)
                for _ in range(50_000)]
        async with (bench.server("campaign", [sys.executable, "-m", "crm_campaign", "serve"], env=env,
                                 port=port) as campaign_address,
                    bare_grpc_server(bench, env=dict(os.environ)) as bare_address,
                    grpc.aio.insecure_channel(campaign_address) as channel):
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            first = await stub.GetNextBestAction(asks[0], metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            if not first.decision_id or not (first.actions or first.excluded):
                raise AssertionError("GetNextBestAction decided nothing for a customer in three segments")
            scored = sum(bool(a.propensity_model) for a in first.actions)
            bench.note(f"first answer: {len(first.actions)} actions, {scored} scored by a propensity model")

            async def ask(index: int) -> object:
                return await stub.GetNextBestAction(asks[index % len(asks)], metadata=metadata,
                                                    timeout=CALL_TIMEOUT_SECONDS)

            async with bare_grpc_call(bare_address, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as bare:
                for concurrency in CONCURRENCIES:
                    floor, measured = await drive_alternating(
                        [bare, ask], concurrency=concurrency, seconds=bench.seconds, rounds=ROUNDS,
                        warmup_seconds=WARMUP_SECONDS)
                    bench.note(f"bare gRPC         {floor.summary()}")
                    bench.note(f"GetNextBestAction {measured.summary()}")
                    report(bench, measured, floor)


def report(bench: BenchRun, measured: LoadResult, floor: LoadResult) -> None:
    c = measured.concurrency
    bench.emit(f"nba_p99_ms_c{c}", measured.p99_ms, "ms", floor=floor.p99_ms, headline=c == LATENCY_CONCURRENCY)
    bench.emit(f"nba_p50_ms_c{c}", measured.p50_ms, "ms", floor=floor.p50_ms)
    bench.emit(f"nba_qps_c{c}", measured.throughput, "requests/s", floor=floor.throughput)
