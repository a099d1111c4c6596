"""The manual clock tests drive services with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmkit.clock import ManualClock


def test_a_manual_clock_moves_only_forward_and_only_when_told() -> None:
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock() == clock() == start
    assert clock.advance(timedelta(hours=3)) == start + timedelta(hours=3)
    assert clock.set(start + timedelta(days=1)) == clock() == start + timedelta(days=1)
    with pytest.raises(ValueError, match="forward"):
        clock.set(start)
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 12, 7))
