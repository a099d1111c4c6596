"""campaign-dispatch: messages/s through the dispatcher and the file adapter, against writing the
same JSON lines with no bookkeeping.

A running campaign has 50,000 queued dispatches on a fresh, migrated campaign database. The
path is the service's own dispatcher (`Dispatcher.drain`, batches of 500): claim each batch
(intent recorded, committed), hand it to the file adapter (lines written, flushed, fsynced),
record the outcomes with their change events (committed). The floor writes the same lines to a
file in the same batches with the same flush and fsync, and nothing else. The ratio is the price
of never sending a customer a message twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.harness import BenchRun
from crm_campaign import tables
from crm_campaign.api import dispatch_messages
from crm_campaign.app import SPEC
from crm_campaign.campaigns.model import CampaignState, CampaignType, Channel
from crm_campaign.campaigns.tables import campaign
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.model import Planned, dispatch_id
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crm_campaign.offers.tables import offer
from crmkit.clock import utc_now
from crmkit.db import Database, migrate
from crmkit.outbox import Outbox

MESSAGES = 50_000
BATCH = 500
CAMPAIGN, OFFER = "bench-dispatch", "td-3y"


async def run(bench: BenchRun) -> None:
    async with bench.database() as url:
        bench.note("migrating a fresh campaign database")
        await migrate(SPEC.migrations, url)
        db = await Database.open(url, pool_size=4)
        try:
            await _queue(db, bench)
            with tempfile.TemporaryDirectory() as work:
                path_seconds = await _dispatch(db, Path(work) / "dispatcher")
                floor_seconds = _bare_lines(Path(work) / "bare" / "sms.jsonl")
            path_rate, floor_rate = MESSAGES / path_seconds, MESSAGES / floor_seconds
            bench.note(f"dispatcher {path_seconds:.2f} s, bare lines {floor_seconds:.2f} s (measured under load)")
            bench.emit("messages_per_s", path_rate, "messages/s", floor=floor_rate, headline=True)
            bench.emit("batch_ms", path_seconds / (MESSAGES / BATCH) * 1000, "ms",
                       floor=floor_seconds / (MESSAGES / BATCH) * 1000)
        finally:
            await db.dispose()


async def _queue(db: Database, bench: BenchRun) -> None:
    bench.note(f"queueing {MESSAGES:,} dispatches for a running campaign")
    async with db.unit_of_work() as uow:
        await uow.execute(sa.insert(campaign).values(
            campaign_id=CAMPAIGN, display_name="Bench", type=int(CampaignType.BATCH),
            state=int(CampaignState.RUNNING), contact_policy={}, creator="bench"))
        await uow.execute(sa.insert(offer).values(
            campaign_id=CAMPAIGN, offer_id=OFFER, display_name="3-year deposit", product_code="TD-3Y",
            product_risk_level=1, priority=50, expected_value_currency="CNY", expected_value_amount=1200))
    repository = DispatchRepository()
    for start in range(0, MESSAGES, 5_000):
        async with db.unit_of_work() as uow:
            await repository.insert_planned(uow, CAMPAIGN, [
                Planned(customer_id=f"c-{n:07d}", offer_id=OFFER, channel=Channel.SMS, template_id="sms-1")
                for n in range(start, min(start + 5_000, MESSAGES))], now=utc_now())


async def _dispatch(db: Database, directory: Path) -> float:
    dispatcher = Dispatcher(db=db, repository=DispatchRepository(),
                            adapters=ChannelAdapters({int(Channel.SMS): FileAdapter(directory)}),
                            outbox=Outbox(tables.outbox_event), feed_payload=dispatch_messages.to_proto,
                            batch_size=BATCH)
    started = time.perf_counter()
    sent = await dispatcher.drain()
    elapsed = time.perf_counter() - started
    await dispatcher.close()
    if sent != MESSAGES:
        raise RuntimeError(f"the dispatcher sent {sent:,} of {MESSAGES:,} messages")
    return elapsed


def _bare_lines(path: Path) -> float:
    path.parent.mkdir(parents=True)
    started = time.perf_counter()
    with path.open("ab") as file:
        for start in range(0, MESSAGES, BATCH):
            chunk = [json.dumps({
                "dispatch_id": dispatch_id(CAMPAIGN, f"c-{n:07d}", Channel.SMS), "campaign": f"campaigns/{CAMPAIGN}",
                "customer": f"customers/c-{n:07d}", "offer": f"campaigns/{CAMPAIGN}/offers/{OFFER}",
                "channel": "SMS", "template_id": "sms-1", "headline": "",
            }, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for n in range(start, start + BATCH)]
            file.write(b"".join(chunk))
            file.flush()
            os.fsync(file.fileno())
    return time.perf_counter() - started
