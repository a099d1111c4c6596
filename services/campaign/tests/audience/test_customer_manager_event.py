"""Profile's Customer events keep each customer's relationship manager in the contact read model
(the book next best action checks), and leave consent and do-not-contact as they were."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from google.protobuf import any_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2
from crm_campaign.audience import contactability
from crm_campaign.audience.read_models import customer_contact

E = change_event_pb2


def customer_event(customer_id: str, change_type: int, manager: str) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(customer_pb2.Customer(name=f"customers/{customer_id}", relationship_manager_id=manager))
    return change_event_pb2.ChangeEvent(resource_type=contactability.CUSTOMER_TYPE,
                                        resource_name=f"customers/{customer_id}", change_type=change_type,
                                        payload=packed)


async def test_customer_events_keep_the_relationship_manager(campaign_service) -> None:
    _, runtime = campaign_service
    customer = f"c-{uuid.uuid4().hex[:8]}"

    async def row() -> tuple[str, bool] | None:
        async with runtime.db.unit_of_work(read_only=True) as uow:
            found = (await uow.execute(sa.select(customer_contact.c.relationship_manager_id,
                                                 customer_contact.c.do_not_contact)
                                       .where(customer_contact.c.customer_id == customer))).first()
        return (found.relationship_manager_id, found.do_not_contact) if found is not None else None

    async with runtime.db.unit_of_work() as uow:
        assert await contactability.apply(uow, customer_event(customer, E.CHANGE_TYPE_CREATED, "rm-1"))
    assert await row() == ("rm-1", False)
    async with runtime.db.unit_of_work() as uow:
        assert await contactability.apply(uow, customer_event(customer, E.CHANGE_TYPE_UPDATED, "rm-2"))
        assert not await contactability.apply(uow, customer_event(customer, E.CHANGE_TYPE_DELETED, ""))
    assert await row() == ("rm-2", False)
