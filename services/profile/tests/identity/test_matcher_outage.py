"""The matcher under a database outage: no event is skipped for want of a database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crm_profile.identity.matcher import Matcher
from crmkit.errors import Unavailable


async def test_rounds_failing_for_want_of_a_database_are_retried_whole_and_skip_nothing() -> None:
    matcher = Matcher(db=Any, identity=Any, merges=Any, customers=Any, poll_seconds=0.01,  # type: ignore[arg-type]
                      batch_size=500)
    batches: list[int | None] = []
    skipped: list[bool] = []

    async def run_once(*, batch_size: int | None = None) -> bool:
        batches.append(batch_size)
        if len(batches) > 3:
            raise asyncio.CancelledError
        raise Unavailable("database unavailable", reason="DATABASE_UNAVAILABLE")

    async def skip_one() -> None:
        skipped.append(True)

    matcher.run_once = run_once  # type: ignore[method-assign]
    matcher._skip_one = skip_one  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await matcher._run()
    assert batches == [500, 500, 500, 500]  # not narrowed to one event, as for a bad record
    assert skipped == []
