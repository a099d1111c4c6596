"""The clock services read "now" from: injectable, so tests can fix the time.

A service takes a `Clock` (a function returning an aware UTC datetime) and its background
workers read the same one, so a test can run a whole service on a `ManualClock` and drive time
through deadlines instead of waiting for them (`crmkit.app.start(..., clock=...)`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC: every service's default clock."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (tests): starts at `start` (default: the real now)."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("a ManualClock needs a timezone-aware start")
        self._now = (start or utc_now()).astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` (never backwards: clocks services read are monotonic)."""
        if delta < timedelta(0):
            raise ValueError("a ManualClock only moves forward")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump forward to `moment`."""
        return self.advance(moment.astimezone(UTC) - self._now)
