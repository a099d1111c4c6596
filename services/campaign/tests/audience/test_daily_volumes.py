"""Expected volume per day and channel: each target message on the day it becomes due."""

from __future__ import annotations

from datetime import UTC, date, datetime

from crm_campaign.audience.model import Eligible
from crm_campaign.audience.volumes import daily_volumes

SMS, EMAIL = 1, 2
BUILT = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai


def eligible(n: int, channel: int, due: datetime | None = None) -> Eligible:
    return Eligible(customer_id=f"C{n}", offer_id="o1", channel=channel, not_before_at=due)


def test_messages_due_now_fall_on_the_build_day_and_pushed_ones_on_their_own_day() -> None:
    target = [eligible(1, SMS), eligible(2, SMS), eligible(3, EMAIL),
              eligible(4, SMS, datetime(2026, 12, 8, 1, 0, tzinfo=UTC)),   # 09:00 on the 8th in Shanghai
              eligible(5, EMAIL, datetime(2026, 12, 10, 1, 0, tzinfo=UTC))]
    assert daily_volumes(target, built_at=BUILT, time_zone="Asia/Shanghai") == [
        (date(2026, 12, 7), SMS, 2), (date(2026, 12, 7), EMAIL, 1),
        (date(2026, 12, 8), SMS, 1), (date(2026, 12, 10), EMAIL, 1)]


def test_days_are_the_quiet_hours_clock_or_utc() -> None:
    late = [eligible(1, SMS, datetime(2026, 12, 7, 17, 0, tzinfo=UTC))]
    assert daily_volumes(late, built_at=BUILT, time_zone="Asia/Shanghai") == [(date(2026, 12, 8), SMS, 1)]
    assert daily_volumes(late, built_at=BUILT, time_zone="") == [(date(2026, 12, 7), SMS, 1)]


def test_an_empty_target_has_no_days() -> None:
    assert daily_volumes([], built_at=BUILT, time_zone="UTC") == []
