"""Points expire once their date has passed: the sweep writes one EXPIRED movement per account,
taking the earliest-expiring points first, and a second sweep (or a racing one) expires nothing more."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import loyalty_pb2
from crm.common.v1 import audit_pb2
from crm_campaign import tables
from crm_campaign.book.repository import BookRepository
from crm_campaign.loyalty import rules
from crm_campaign.loyalty.expiry import LoyaltyExpiry
from crm_campaign.loyalty.repository import LoyaltyRepository
from crm_campaign.loyalty.service import Loyalty
from crmkit.audit import AuditWriter
from crmkit.auth import Role
from crmkit.idempotency import IdempotencyKeys
from crmkit.pagination import PageTokens
from crmkit.testing import bearer

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_MARKETING)


def test_expired_points_are_what_is_left_of_lots_past_their_date() -> None:
    lots = [(date(2026, 12, 31), 100), (date(2027, 12, 31), 300)]
    assert rules.expired_points(lots, spent=30, today=date(2027, 1, 1)) == 70
    assert rules.expired_points(lots, spent=30, today=date(2026, 12, 31)) == 0, "valid through their date"
    assert rules.expired_points(lots, spent=130, today=date(2028, 1, 1)) == 270
    assert rules.expired_points(lots, spent=400, today=date(2030, 1, 1)) == 0


async def adjust(campaigns: Any, customer: str, points: int) -> None:
    await campaigns.AdjustLoyaltyPoints(pb.AdjustLoyaltyPointsRequest(
        customer=customer, points=points, reason="Test", request_id=str(uuid.uuid4()), audit=AUDIT), metadata=MARKETER)


async def test_the_sweep_expires_points_past_their_date_once(campaigns, campaign_service) -> None:  # type: ignore[no-untyped-def]
    _, runtime = campaign_service
    customers = [f"customers/x-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    for customer in customers:
        await adjust(campaigns, customer, 150)
        await adjust(campaigns, customer, -30)
    await adjust(campaigns, customers[2], -120)  # nothing left to expire
    loyalty = Loyalty(repository=LoyaltyRepository(), book=BookRepository(),
                      idempotency=IdempotencyKeys(tables.idempotency_key), page_tokens=PageTokens(b"k" * 32),
                      audit=AuditWriter(runtime.db, tables.audit_record))
    valid_until = rules.expire_on(datetime.now(UTC).date())
    day_after = datetime.combine(valid_until + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    sweeps = [LoyaltyExpiry(db=runtime.db, loyalty=loyalty, batch_size=2, clock=lambda: day_after) for _ in range(2)]
    # Every account in the test database is past that date: the sweeps see them all, each once.
    await asyncio.gather(*(sweep.run_once() for sweep in sweeps))
    assert await sweeps[0].run_once() == 0

    for customer in customers:
        found = (await campaigns.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(customer=customer, audit=AUDIT),
                                                   metadata=ANALYST)).loyalty_account
        assert (found.balance, found.expiring_points, found.lifetime_earned) == (0, 0, 150)
    history = (await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
        customer=customers[0], audit=AUDIT), metadata=ANALYST)).transactions
    newest = history[0]
    assert (newest.type, newest.points, newest.balance_after, newest.actor) == (
        loyalty_pb2.LOYALTY_TRANSACTION_TYPE_EXPIRED, -120, 0, "system:loyalty-expiry")
    ids = [c.split("/")[1] for c in customers]
    async with runtime.db.engine.connect() as connection:
        expired = (await connection.execute(sa.text(
            "SELECT customer_id, count(*) FROM loyalty_transaction WHERE type = 4 AND customer_id = ANY(:ids) "
            "GROUP BY customer_id ORDER BY customer_id"), {"ids": ids})).all()
    assert sorted(row[0] for row in expired) == sorted(ids[:2]) and all(row[1] == 1 for row in expired)
