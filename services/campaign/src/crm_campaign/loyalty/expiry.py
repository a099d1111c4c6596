"""The expiry sweep: a background task of the service that writes EXPIRED movements for points
past their date, one account per unit of work. Replicas may all run it: each account's movement
is made under its row lock after recomputing what is due, so points expire once."""

from __future__ import annotations

from crm_campaign.loyalty.service import Loyalty
from crmkit.clock import Clock, utc_now
from crmkit.db import Database
from crmkit.periodic import Periodic


class LoyaltyExpiry:
    def __init__(self, *, db: Database, loyalty: Loyalty, interval_seconds: float = 3600.0, batch_size: int = 500,
                 clock: Clock = utc_now) -> None:
        self._db = db
        self._loyalty = loyalty
        self._batch_size = batch_size
        self._clock = clock
        self._periodic = Periodic("loyalty-expiry", self.run_once, interval_seconds=interval_seconds)

    async def run_once(self) -> int:
        """Expire what is due today in every account; returns how many accounts lost points."""
        today = self._clock().date()
        expired, after = 0, ""
        while True:
            async with self._db.unit_of_work(read_only=True) as uow:
                due = await self._loyalty.accounts_due(uow=uow, today=today, after=after, limit=self._batch_size)
            for customer_id in due:
                async with self._db.unit_of_work() as uow:
                    if await self._loyalty.expire(uow=uow, customer_id=customer_id, today=today) is not None:
                        expired += 1
            if len(due) < self._batch_size:
                return expired
            after = due[-1]

    def start(self) -> None:
        self._periodic.start()

    async def close(self) -> None:
        await self._periodic.close()
