"""The customer read model's use cases: apply one profile change event (inside the feed
consumer's transaction, which stores the cursor with the effect), and say how current it is."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_risk.customers import feed, rules
from crm_risk.customers.model import AgeChange, CustomerChange, ReadModelStatus
from crm_risk.customers.repository import CustomerRepository
from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.risk.customers")


class CustomerReadModel:
    def __init__(self, *, repository: CustomerRepository, attributes: rules.AttributeNames) -> None:
        self._repository = repository
        self._attributes = attributes
        # Set when profile answered CURSOR_EXPIRED: events were purged before this model saw
        # them, so it must be rebuilt from profile's List RPCs (health details say so).
        self.needs_rebuild = False

    async def apply(self, connection: AsyncConnection, event: feed.ChangeEvent) -> bool:
        """Apply one event of profile's feed; False when it changed nothing (an unfollowed type,
        a replay, or an event older than what the model holds)."""
        change = feed.decode(event, self._attributes)
        match change:
            case CustomerChange():
                return await self._repository.put_customer(connection, change)
            case AgeChange():
                return await self._repository.put_age(connection, change)
            case None:
                return False

    def expired(self) -> None:
        self.needs_rebuild = True
        log.error("customer_read_model_needs_rebuild", feed="profile")

    async def status(self, *, db: Database) -> ReadModelStatus:
        async with db.unit_of_work(read_only=True) as uow:
            return ReadModelStatus(newest_event_at=await self._repository.newest_event_at(uow),
                                   customer_count=await self._repository.count(uow),
                                   needs_rebuild=self.needs_rebuild)
