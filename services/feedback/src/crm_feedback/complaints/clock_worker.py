"""The SLA clock worker: escalates complaints whose clocks reach their escalation point or deadline.

Background work no RPC starts, so it opens its own unit of work per round (crmkit.db's rule) and
calls `Complaints.run_clocks` in it. It reads "now" from the service's injectable clock, so a test
drives time through the deadlines instead of waiting for them.

Safe with any number of replicas: a round locks the complaints it takes with `FOR UPDATE SKIP
LOCKED` (another replica's round, or an RPC working the complaint, keeps it) and records each
event on the clock's row in the same transaction, so an event is handled once: a replica that
takes the complaint after the commit finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from crm_feedback.complaints.service import Complaints
from crmkit.clock import Clock
from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.feedback.sla_clock")


class SlaClockWorker:
    def __init__(self, *, db: Database, complaints: Complaints, clock: Clock, poll_seconds: float,
                 batch_size: int = 100) -> None:
        self._db = db
        self._complaints = complaints
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self.last_round_at: datetime | None = None  # the clock's now at the last round that completed
        self.failing = False

    async def details(self) -> dict[str, object]:
        """Health details: when the clock worker last completed a round, and whether it is failing."""
        return {"sla_clock_last_round": self.last_round_at.isoformat() if self.last_round_at else "",
                "sla_clock_failing": self.failing}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sla-clock")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        """One round at the clock's now: how many complaints it took (a full batch: more may wait)."""
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            taken = await self._complaints.run_clocks(uow=uow, now=now, limit=self._batch_size)
        self.last_round_at, self.failing = now, False
        if taken:
            log.info("sla_clock_round", complaints=taken)
        return taken

    async def _run(self) -> None:
        while True:
            try:
                full = await self.run_once() >= self._batch_size
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly unreachable: the events stay due
                log.warning("sla_clock_round_failed", error_type=type(exc).__name__)
                self.failing, full = True, False
            if not full:
                await asyncio.sleep(self._poll_seconds)
