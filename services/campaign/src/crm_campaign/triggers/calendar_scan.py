"""The calendar scan: a background task of the service (hourly by default) that fires the rules
no feed event fires - relationship anniversaries within their lead time and dormancy - from the
calendar read model (`trigger_customer_calendar`). Each customer's firing runs in its own unit of
work through `TriggerFiring.fire`, under the firing's unique (rule, customer, event key): a
repeated scan, or replicas scanning together, fire nothing twice.

Keys: `anniversary:<year of the anniversary>` (once a year per rule), `dormancy:<date of the last
own activity>` (once per spell of inactivity: the customer must be active again for a new key).
"""

from __future__ import annotations

from datetime import timedelta

from crm_campaign.triggers import calendar
from crm_campaign.triggers.calendar_repository import CalendarRepository
from crm_campaign.triggers.firing import TriggerFiring
from crm_campaign.triggers.firing_repository import FiringRepository
from crm_campaign.triggers.model import AnniversaryCondition, DormancyCondition, TriggerEvent, TriggerEventType
from crmkit.clock import Clock, utc_now
from crmkit.db import Database
from crmkit.periodic import Periodic


class CalendarScan:
    def __init__(self, *, db: Database, firing: TriggerFiring, rules: FiringRepository, calendar: CalendarRepository,
                 interval_seconds: float = 3600.0, batch_size: int = 500, clock: Clock = utc_now) -> None:
        self._db = db
        self._firing = firing
        self._rules = rules
        self._calendar = calendar
        self._batch_size = batch_size
        self._clock = clock
        self._periodic = Periodic("trigger-calendar-scan", self.run_once, interval_seconds=interval_seconds)

    async def run_once(self) -> int:
        """One scan of anniversaries and dormancy; returns how many customers' events fired a rule."""
        return await self._anniversaries() + await self._dormancy()

    async def _anniversaries(self) -> int:
        async with self._db.unit_of_work(read_only=True) as uow:
            rules = await self._rules.enabled_rules(uow, TriggerEventType.ANNIVERSARY)
        leads = [r.condition.lead_time.days for r in rules
                 if isinstance(r.condition, AnniversaryCondition) and r.condition.lead_time is not None]
        if not leads:
            return 0
        now = self._clock()
        days = calendar.window(now.date(), max(leads))
        fired, after = 0, ""
        while True:
            async with self._db.unit_of_work(read_only=True) as uow:
                found = await self._calendar.anniversaries(uow, calendar.month_days(days), after=after,
                                                           limit=self._batch_size)
            for customer_id, month_day, year in found:
                day = calendar.anniversary_in(days, month_day)
                if day is None or day.year <= year:
                    continue
                fired += await self._fire(TriggerEvent(
                    TriggerEventType.ANNIVERSARY, customer_id, key=f"anniversary:{day.year}", occurred_at=now,
                    anniversary=day, years=day.year - year))
            if len(found) < self._batch_size:
                return fired
            after = found[-1][0]

    async def _dormancy(self) -> int:
        async with self._db.unit_of_work(read_only=True) as uow:
            rules = await self._rules.enabled_rules(uow, TriggerEventType.DORMANCY)
        spans = {r.trigger_rule_id: r.condition.inactive_for for r in rules
                 if isinstance(r.condition, DormancyCondition) and r.condition.inactive_for is not None}
        if not spans:
            return 0
        now = self._clock()
        shortest: timedelta = min(spans.values())
        fired, after = 0, ""
        while True:
            async with self._db.unit_of_work(read_only=True) as uow:
                found = await self._calendar.dormant(uow, inactive_before=now - shortest, rule_ids=list(spans),
                                                     after=after, limit=self._batch_size)
            for customer_id, last_active in found:
                fired += await self._fire(TriggerEvent(
                    TriggerEventType.DORMANCY, customer_id, key=f"dormancy:{last_active.date().isoformat()}",
                    occurred_at=now, inactive_since=last_active))
            if len(found) < self._batch_size:
                return fired
            after = found[-1][0]

    async def _fire(self, event: TriggerEvent) -> int:
        async with self._db.unit_of_work() as uow:
            return int(await self._firing.fire(uow=uow, event=event))

    def start(self) -> None:
        self._periodic.start()

    async def close(self) -> None:
        await self._periodic.close()
