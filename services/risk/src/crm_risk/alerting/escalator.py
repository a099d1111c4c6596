"""The clock worker that escalates alerts nobody answered by their due time (24 hours by default).

Who opens the transaction (crmkit.db's rule, for work no RPC starts): the escalator, one unit of
work per round; `Alerts.escalate_due` runs in it. Safe with any number of replicas: a round
locks the alerts it escalates with SKIP LOCKED, so two replicas never take the same alert, and an
alert another replica escalated and committed is no longer OPEN when re-read under the lock.
"now" is the injected `crmkit.clock`, so tests move time instead of waiting a day.
"""

from __future__ import annotations

import asyncio
import contextlib

from crm_risk.alerting.service import Alerts
from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.risk.escalator")

BATCH = 200


class AlertEscalator:
    def __init__(self, *, db: Database, alerts: Alerts, poll_seconds: float, batch_size: int = BATCH) -> None:
        self._db = db
        self._alerts = alerts
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-escalator")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        """One round; how many alerts it escalated (a full batch means there may be more)."""
        async with self._db.unit_of_work() as uow:
            return len(await self._alerts.escalate_due(uow=uow, limit=self._batch_size))

    async def _run(self) -> None:
        while True:
            try:
                escalated = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("escalation_round_failed", error_type=type(exc).__name__)
                escalated = 0
            if escalated < self._batch_size:
                await asyncio.sleep(self._poll_seconds)
