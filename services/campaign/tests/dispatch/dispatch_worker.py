"""A dispatcher process for the crash test: `python dispatch_worker.py <database url> <directory>
<lease seconds> <hold seconds>` sends every due dispatch through a file adapter in `directory`
and exits. `hold` keeps each batch's outcome unrecorded that long after the lines are on disk
(a slow provider acknowledgement): the window in which a crash is most dangerous."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from crm_campaign import tables
from crm_campaign.api import dispatch_messages
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.base import OutboundMessage, Outcome
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crmkit.db import Database
from crmkit.outbox import Outbox


class SlowAcknowledgement:
    def __init__(self, inner: FileAdapter, hold: float) -> None:
        self._inner, self._hold = inner, hold

    async def send(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        outcomes = await self._inner.send(messages)
        await asyncio.sleep(self._hold)
        return outcomes

    async def close(self) -> None:
        await self._inner.close()


async def main(url: str, directory: str, lease: float, hold: float) -> None:
    db = await Database.open(url, pool_size=2)
    adapter = SlowAcknowledgement(FileAdapter(Path(directory)), hold)
    dispatcher = Dispatcher(db=db, repository=DispatchRepository(),
                            adapters=ChannelAdapters({int(Channel.SMS): adapter}),
                            outbox=Outbox(tables.outbox_event), feed_payload=dispatch_messages.to_proto,
                            batch_size=10, lease=timedelta(seconds=lease))
    try:
        await dispatcher.drain()
    finally:
        await dispatcher.close()
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
