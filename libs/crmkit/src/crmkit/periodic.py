"""A service's periodic background job: `run_once` every `interval_seconds`, for as long as the
service runs, closed with it.

One failed round is logged and the next round runs on schedule (a database blip must not stop a
sweep for good); cancellation ends the loop. The job decides what a round does and how replicas
share it (row locks, unique keys): this only keeps the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from crmkit.logs import get_logger

log = get_logger("crm.periodic")


class Periodic:
    def __init__(self, name: str, run_once: Callable[[], Awaitable[int]], *, interval_seconds: float) -> None:
        """`run_once` returns how much it did (logged when not 0) under the job's `name`."""
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self._name = name
        self._run_once = run_once
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    async def _loop(self) -> None:
        while True:
            try:
                done = await self._run_once()
                if done:
                    log.info("periodic_round_done", job=self._name, count=done)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic_round_failed", job=self._name)
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
