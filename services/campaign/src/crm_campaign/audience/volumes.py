"""Expected volume per day and channel: when each target customer's message becomes due.

The dispatcher sends a message as soon as it is due, with no pacing of its own, so a build's
daily volume is its target grouped by the day each message is due: at the build time (a dry run
reads as if the campaign were launched then), or later when quiet hours or quiet days push it.
Days are dates in the quiet hours' time zone, the bank's clock for its channels' capacity, or
UTC when the campaign names none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from crm_campaign.audience.model import Eligible


def daily_volumes(target: Iterable[Eligible], *, built_at: datetime, time_zone: str
                  ) -> list[tuple[date, int, int]]:
    """(day, channel, messages) for every day and channel with at least one message, in order."""
    zone = ZoneInfo(time_zone or "UTC")
    counts = Counter(((e.not_before_at or built_at).astimezone(zone).date(), e.channel) for e in target)
    return [(day, channel, count) for (day, channel), count in sorted(counts.items())]
