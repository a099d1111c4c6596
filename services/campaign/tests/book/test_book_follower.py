"""The books' read model: profile's Customer events set each customer's relationship manager."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from google.protobuf import any_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import consent_pb2, customer_pb2
from crm_campaign.book import follower
from crm_campaign.book.rules import in_book
from crm_campaign.book.tables import customer_manager
from crmkit.auth import Principal, Role

E = change_event_pb2


def event(name: str, change_type: int, payload: object | None) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    if payload is not None:
        packed.Pack(payload)  # type: ignore[arg-type]
    message = change_event_pb2.ChangeEvent(resource_type=follower.CUSTOMER_TYPE, resource_name=name,
                                           change_type=change_type, payload=packed)
    message.occurred_at.GetCurrentTime()
    return message


async def test_customer_events_keep_each_customers_manager(campaign_service) -> None:
    _, runtime = campaign_service
    customer_id = f"c-{uuid.uuid4().hex[:8]}"
    name = f"customers/{customer_id}"

    async def row() -> tuple[str, bool] | None:
        async with runtime.db.unit_of_work(read_only=True) as uow:
            found = (await uow.execute(sa.select(customer_manager).where(
                customer_manager.c.customer_id == customer_id))).first()
        return None if found is None else (found.relationship_manager_id, found.active)

    async with runtime.db.unit_of_work() as uow:
        assert await follower.apply(uow, event(name, E.CHANGE_TYPE_CREATED, customer_pb2.Customer(
            name=name, relationship_manager_id="rm-1")))
    assert await row() == ("rm-1", True)
    async with runtime.db.unit_of_work() as uow:
        assert await follower.apply(uow, event(name, E.CHANGE_TYPE_UPDATED, customer_pb2.Customer(
            name=name, relationship_manager_id="rm-2")))
        assert not await follower.apply(uow, event(name, E.CHANGE_TYPE_UPDATED, consent_pb2.ContactPreferences()))
        other = change_event_pb2.ChangeEvent(resource_type="crm.profile.v1.ConsentRecord", resource_name=name)
        assert not await follower.apply(uow, other)
    assert await row() == ("rm-2", True)
    async with runtime.db.unit_of_work() as uow:
        assert await follower.apply(uow, event(name, E.CHANGE_TYPE_DELETED, None))
    assert await row() == ("", False)


def test_only_a_relationship_manager_without_a_broader_role_is_held_to_their_book() -> None:
    rm = Principal("rm-1", frozenset({Role.RELATIONSHIP_MANAGER}))
    assert in_book(rm, "rm-1") and not in_book(rm, "rm-2") and not in_book(rm, "") and not in_book(rm, None)
    broader = Principal("rm-1", frozenset({Role.RELATIONSHIP_MANAGER, Role.MARKETER}))
    assert in_book(broader, "rm-2") and in_book(broader, None)
