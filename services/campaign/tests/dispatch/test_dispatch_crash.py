"""Killing a dispatcher process mid-dispatch and starting another sends no customer a second message."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crm_campaign.api import dispatch_messages
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.model import DispatchState, Planned
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.tables import outbox_event
from crmkit.outbox import Outbox

WORKER = Path(__file__).with_name("dispatch_worker.py")
LEASE_SECONDS = 1.0


async def start_worker(database_url: str, directory: Path, hold: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, str(WORKER), database_url, str(directory),
                                                str(LEASE_SECONDS), str(hold))


def written_customers(directory: Path, prefix: str) -> list[str]:
    path = directory / "sms.jsonl"
    if not path.exists():
        return []
    return [row["customer"] for row in map(json.loads, path.read_text().splitlines())
            if row["customer"].startswith(f"customers/{prefix}")]


async def states(runtime: Any, campaign_id: str) -> dict[int, int]:
    async with runtime.db.unit_of_work(read_only=True) as uow:
        rows = (await uow.execute(sa.select(dispatch.c.state, sa.func.count()).where(
            dispatch.c.campaign_id == campaign_id).group_by(dispatch.c.state))).all()
    return {state: count for state, count in rows}


@pytest.mark.slow
async def test_a_killed_dispatcher_and_its_replacement_send_each_customer_one_message(
        campaign_service, campaign_database, running_campaign, queue_dispatches, tmp_path: Path) -> None:
    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    prefix = f"k{uuid.uuid4().hex[:6]}-"
    planned = [Planned(customer_id=f"{prefix}{n}", offer_id=offer.offer_id, channel=Channel.SMS,
                       template_id="sms-td-renewal-v2") for n in range(60)]
    # Dispatches other tests left queued in the shared database go first (into another folder),
    # so the worker's first batches are this test's.
    earlier = Dispatcher(db=runtime.db, repository=DispatchRepository(),
                         adapters=ChannelAdapters({int(Channel.SMS): FileAdapter(tmp_path / "earlier")}),
                         outbox=Outbox(outbox_event), feed_payload=dispatch_messages.to_proto)
    await earlier.drain()
    await earlier.close()
    await queue_dispatches(campaign.campaign_id, planned)

    first = await start_worker(campaign_database, tmp_path, hold=0.5)
    for _ in range(600):  # kill it as soon as its first batch is on disk, before the outcome is recorded
        if written_customers(tmp_path, prefix):
            break
        await asyncio.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    at_crash = await states(runtime, campaign.campaign_id)
    assert at_crash.get(DispatchState.SENDING, 0) > 0, f"the kill landed inside the dangerous window: {at_crash}"
    assert written_customers(tmp_path, prefix), "some messages were out before the crash"

    await asyncio.sleep(LEASE_SECONDS + 0.2)  # the dead process's claims lapse
    second = await start_worker(campaign_database, tmp_path, hold=0.0)
    assert await second.wait() == 0

    customers = written_customers(tmp_path, prefix)
    assert sorted(customers) == sorted(f"customers/{p.customer_id}" for p in planned), "everyone once, no one twice"
    assert await states(runtime, campaign.campaign_id) == {DispatchState.SENT: 60}
    async with runtime.db.unit_of_work(read_only=True) as uow:
        sent_events = (await uow.execute(sa.select(sa.func.count()).where(
            outbox_event.c.resource_name.like(f"{campaign.name}/dispatches/%"),
            outbox_event.c.change_type == 2))).scalar_one()
    assert sent_events == 60, "each dispatch published as sent once"
