"""Profile's Holding events into renewal tracking's tables. `apply` rides on the books' follower of
profile's feed (`book.follower.follow_profile_customers`, cursor `profile-customers`), in the same
transaction as the books; each customer's relationship manager is the books' (`customer_manager`).

- A Holding event updates `renewal_holding` (deposits and investments, to see where matured money
  went) and, for a term product with a maturity date, opens or updates the renewal of that
  maturity. The maturing amount follows the balance until the maturity date and is then frozen.
- A Holding whose maturity date moves later (renewed or rolled over in place) decides the renewal
  of the old maturity as rolled over, with the balance it rolled over with.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import sqlalchemy as sa
from google.type import money_pb2
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import holding_pb2
from crm_campaign.renewals import rules
from crm_campaign.renewals.tables import renewal, renewal_holding
from crmkit.feed_consumer import ChangeEvent
from crmkit.outbox import feed_order
from crmkit.validation import to_date

HOLDING_TYPE = "crm.profile.v1.Holding"
DELETED = change_event_pb2.CHANGE_TYPE_DELETED
NANOS = Decimal(1_000_000_000)


def _amount(money: money_pb2.Money) -> Decimal:
    return Decimal(money.units) + Decimal(money.nanos) / NANOS


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    parts = event.resource_name.split("/")
    if event.resource_type == HOLDING_TYPE and len(parts) == 4 and parts[0] == "customers":
        return await _holding(connection, event, parts[1], parts[3])
    return False


async def _holding(connection: AsyncConnection, event: ChangeEvent, customer_id: str, holding_id: str) -> bool:
    h = renewal_holding.c
    key = sa.and_(h.customer_id == customer_id, h.holding_id == holding_id)
    position = feed_order(event.cursor)
    previous = (await connection.execute(
        sa.select(h.maturity_date, h.position).where(key).with_for_update())).first()
    if previous is not None and previous.position >= position:
        return False  # an older event than the one applied
    if event.change_type == DELETED:
        await connection.execute(sa.delete(renewal_holding).where(key))
        return previous is not None
    holding = holding_pb2.Holding()
    if not event.payload.Unpack(holding):
        return False
    maturity = to_date(holding.maturity_date)
    occurred_on = event.occurred_at.ToDatetime(tzinfo=UTC).date()
    balance, reporting = _amount(holding.balance), _amount(holding.reporting_balance)
    row = {"product_code": holding.product_code, "product_type": holding.product_type,
           "currency": holding.currency, "balance": balance, "reporting_balance": reporting,
           "open_date": to_date(holding.open_date), "maturity_date": maturity, "status": holding.status,
           "position": position}
    statement = pg.insert(renewal_holding).values(customer_id=customer_id, holding_id=holding_id, **row)
    await connection.execute(statement.on_conflict_do_update(
        index_elements=[h.customer_id, h.holding_id], set_=row))
    r = renewal.c
    if previous is not None and previous.maturity_date is not None and maturity is not None \
            and maturity > previous.maturity_date:
        await connection.execute(sa.update(renewal).where(
            r.customer_id == customer_id, r.holding_id == holding_id, r.maturity_date == previous.maturity_date,
            r.rolled_over_on.is_(None),
        ).values(rolled_over_amount=balance, rolled_over_reporting_amount=reporting, rolled_over_on=occurred_on,
                 updated_at=sa.func.now()))
    if maturity is not None and rules.is_tracked(holding.product_type, maturity, holding.status):
        amounts = {"maturing_amount": balance, "maturing_reporting_amount": reporting,
                   "product_code": holding.product_code, "currency": holding.currency}
        opened = pg.insert(renewal).values(
            renewal_id=rules.renewal_id(customer_id, holding_id, maturity), customer_id=customer_id,
            holding_id=holding_id, maturity_date=maturity, **amounts)
        # The maturing amount follows the balance up to the maturity date, then stays.
        await connection.execute(opened.on_conflict_do_update(
            constraint="uq_renewal_holding_maturity", set_={**amounts, "updated_at": sa.func.now()},
            where=sa.and_(r.rolled_over_on.is_(None), sa.literal(occurred_on) <= r.maturity_date)))
    return True

