"""Profile's Customer events are the books' (`book.follower`), not the contact read model's: the
contactability follower leaves them alone, and next best action reads the manager from the books."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from google.protobuf import any_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2
from crm_campaign.audience import contactability
from crm_campaign.audience.read_models import customer_contact
from crm_campaign.book import follower
from crm_campaign.book.tables import customer_manager

E = change_event_pb2


def customer_event(customer_id: str, change_type: int, manager: str) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(customer_pb2.Customer(name=f"customers/{customer_id}", relationship_manager_id=manager))
    message = change_event_pb2.ChangeEvent(resource_type=follower.CUSTOMER_TYPE,
                                           resource_name=f"customers/{customer_id}", change_type=change_type,
                                           payload=packed)
    message.occurred_at.FromDatetime(datetime.now(UTC))
    return message


async def test_customer_events_keep_the_manager_in_the_books_only(campaign_service) -> None:
    _, runtime = campaign_service
    customer = f"c-{uuid.uuid4().hex[:8]}"

    async def rows() -> tuple[str | None, bool]:
        async with runtime.db.unit_of_work(read_only=True) as uow:
            manager = await uow.scalar(sa.select(customer_manager.c.relationship_manager_id)
                                       .where(customer_manager.c.customer_id == customer))
            contact = await uow.scalar(sa.select(sa.exists().where(customer_contact.c.customer_id == customer)))
        return manager, bool(contact)

    async with runtime.db.unit_of_work() as uow:
        assert not await contactability.apply(uow, customer_event(customer, E.CHANGE_TYPE_CREATED, "rm-1"))
    assert await rows() == (None, False)
    async with runtime.db.unit_of_work() as uow:
        assert await follower.apply(uow, customer_event(customer, E.CHANGE_TYPE_CREATED, "rm-1"))
        assert await follower.apply(uow, customer_event(customer, E.CHANGE_TYPE_UPDATED, "rm-2"))
    assert await rows() == ("rm-2", False)
