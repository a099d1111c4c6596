"""crmkit.periodic: a round that fails is logged and the schedule goes on; close ends it."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from crmkit.periodic import Periodic


async def test_a_failed_round_is_logged_and_the_next_round_runs_then_close_stops_the_job() -> None:
    rounds: list[int] = []
    third = asyncio.Event()

    async def run_once() -> int:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("database blip")
        if len(rounds) == 3:
            third.set()
        return 2

    job = Periodic("sweep-under-test", run_once, interval_seconds=0.01)
    with structlog.testing.capture_logs() as logs:
        job.start()
        await asyncio.wait_for(third.wait(), timeout=5)
        await job.close()
    stopped_at = len(rounds)
    await asyncio.sleep(0.05)
    assert len(rounds) == stopped_at, "no round after close"
    events = [(e["event"], e.get("job")) for e in logs]
    assert events[0] == ("periodic_round_failed", "sweep-under-test")
    assert ("periodic_round_done", "sweep-under-test") in events
    assert next(e for e in logs if e["event"] == "periodic_round_done")["count"] == 2


def test_the_interval_must_be_positive() -> None:
    async def nothing() -> int:
        return 0

    with pytest.raises(ValueError, match="interval_seconds"):
        Periodic("never", nothing, interval_seconds=0)
