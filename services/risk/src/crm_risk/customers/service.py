"""The customer read model's use cases: apply one profile change event (inside the feed
consumer's transaction, which stores the cursor with the effect), and say how current it is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_risk.customers import feed, rules
from crm_risk.customers.model import AgeChange, CustomerChange, HoldingChange, ReadModelStatus
from crm_risk.customers.repository import CustomerRepository
from crm_risk.reports import repository as reports
from crm_risk.reports import rules as report_rules
from crm_risk.reports.model import ChurnType
from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.risk.customers")
# Applies one of profile's customer events (not kept in the model): True when it changed something.
OnCustomerEvent = Callable[[AsyncConnection, feed.ChangeEvent], Awaitable[bool]]


class CustomerReadModel:
    def __init__(self, *, repository: CustomerRepository, attributes: rules.AttributeNames,
                 reporting_currency: str = "CNY", exit_reason_attribute: str = "exit_reason",
                 on_customer_event: OnCustomerEvent | None = None) -> None:
        """`on_customer_event`: what profile's `CustomerEvent`s feed (the transaction alert rules);
        without it they are skipped."""
        self._repository = repository
        self._on_customer_event = on_customer_event
        self._attributes = attributes
        self._currency = reporting_currency
        self._exit_reason = exit_reason_attribute
        # Set when profile answered CURSOR_EXPIRED: events were purged before this model saw
        # them, so it must be rebuilt from profile's List RPCs (health details say so).
        self.needs_rebuild = False

    async def apply(self, connection: AsyncConnection, event: feed.ChangeEvent) -> bool:
        """Apply one event of profile's feed; False when it changed nothing (an unfollowed type,
        a replay, or an event older than what the model holds)."""
        if event.resource_type == rules.EVENT_TYPE:
            return await self._on_customer_event(connection, event) if self._on_customer_event else False
        change = feed.decode(event, self._attributes, self._currency)
        match change:
            case CustomerChange():
                applied = await self._repository.put_customer(connection, change)
            case AgeChange():
                applied = await self._repository.put_age(connection, change)
            case HoldingChange():
                return await reports.put_holding(connection, change)
            case None:
                return False
        # A customer record shows churn only when it closes the relationship; features may any time.
        if applied and (isinstance(change, AgeChange) or change.closed_on is not None):
            await self._detect_churn(connection, change.stamp.customer_id)
        return applied

    async def _detect_churn(self, connection: AsyncConnection, customer_id: str) -> None:
        """Record the churn the customer's data now shows (reports.rules), in the apply transaction."""
        snapshot = await reports.churn_snapshot(connection, customer_id, exit_reason_attribute=self._exit_reason)
        if snapshot is None:
            return
        found = report_rules.detect(snapshot, last_balance_attrition_on=None)
        if any(d.churn_type == ChurnType.BALANCE_ATTRITION for d in found):
            last = await reports.last_churn_on(connection, customer_id, ChurnType.BALANCE_ATTRITION)
            found = report_rules.detect(snapshot, last_balance_attrition_on=last)
        await reports.record_churn(connection, found)

    def expired(self) -> None:
        self.needs_rebuild = True
        log.error("customer_read_model_needs_rebuild", feed="profile")

    async def status(self, *, db: Database) -> ReadModelStatus:
        async with db.unit_of_work(read_only=True) as uow:
            return ReadModelStatus(newest_event_at=await self._repository.newest_event_at(uow),
                                   customer_count=await self._repository.count(uow),
                                   needs_rebuild=self.needs_rebuild)
