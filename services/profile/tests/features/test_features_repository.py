"""The feature repository on the service's real database: the refresher's marks, and money
converted at configured rates and rounded once. Each test works inside one transaction that it
rolls back, so the running service's refresher never sees its rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm.profile.v1 import event_pb2
from crm_profile.features.repository import FeatureRepository
from crm_profile.features.rules import Currency, Windows


class RolledBack(Exception):
    """Raised at the end of a test's transaction to undo it."""


async def test_marks_are_taken_oldest_first_a_batch_of_customers_at_a_time(world) -> None:
    repository = FeatureRepository()
    with pytest.raises(RolledBack):
        async with world.db.unit_of_work() as session:
            while await repository.claim_marks(session, customers=10_000):
                pass  # whatever other tests left: this transaction starts from an empty queue
            await repository.mark(session, ["B", "A", "B"])
            await repository.mark(session, ["C", "A", "D"])
            await repository.mark(session, ["E"])
            assert await repository.claim_marks(session, customers=3) == ["A", "B", "C"]
            # The rest went back to the head of the queue, before marks made since.
            await repository.mark(session, ["F"])
            assert await repository.claim_marks(session, customers=3) == ["D", "E", "F"]
            assert await repository.claim_marks(session, customers=3) == []
            raise RolledBack


async def test_transactions_are_converted_at_configured_rates_and_rounded_once(world) -> None:
    now = datetime.now(UTC)
    customer = await world.customer()
    usd = event_pb2.TRANSACTION_KIND_TRANSFER
    await world.ingest(
        world.transaction(customer, now - timedelta(days=1), world.money(0, 10_000_000, "USD"), kind=usd,
                          channel=event_pb2.EVENT_CHANNEL_WEB_BANKING),
        world.transaction(customer, now - timedelta(days=2), world.money(0, 20_000_000, "USD"), kind=usd,
                          channel=event_pb2.EVENT_CHANNEL_WEB_BANKING),
        world.transaction(customer, now - timedelta(days=3), world.money(1, 0, "JPY"), kind=usd,
                          channel=event_pb2.EVENT_CHANNEL_WEB_BANKING),
    )
    customer_id = customer.split("/")[1]
    windows = Windows.of(datetime.now(UTC), rfm_window_days=365)
    async with world.db.unit_of_work(read_only=True) as session:
        (converted,) = await FeatureRepository().compute(
            session, [customer_id], windows=windows, currency=Currency.of("CNY", {"USD": Decimal("2.5")}))
        (unconverted,) = await FeatureRepository().compute(
            session, [customer_id], windows=windows, currency=Currency.of("CNY", {}))
    # 3 cents at 2.5 is 7.5 fen: rounded once, half to even, 8 (rounding each transaction, 2 + 5).
    assert converted.monetary_minor == 8 and converted.frequency == 3  # JPY has no rate: counted, not summed
    assert unconverted.monetary_minor == 0 and unconverted.frequency == 3
    assert converted.reporting_currency == "CNY"
