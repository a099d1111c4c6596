"""Profile's Customer events into the customer-feature read model, and training that reads it."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from google.protobuf import any_pb2
from google.type import decimal_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2
from crm_campaign.propensity import customer_features
from crm_campaign.propensity.tables import customer_feature

E = change_event_pb2


def event(customer: customer_pb2.Customer, change_type: int = E.CHANGE_TYPE_UPDATED) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(customer)
    return change_event_pb2.ChangeEvent(resource_type=customer_features.CUSTOMER_TYPE,
                                        resource_name=customer.name, change_type=change_type, payload=packed)


def customer(customer_id: str, **attributes: attribute_pb2.AttributeValue) -> customer_pb2.Customer:
    return customer_pb2.Customer(name=f"customers/{customer_id}", customer_id=customer_id, occupation="technician",
                                 full_name="Someone", attributes=attributes)


async def features(runtime: Any, customer_id: str) -> dict[str, Any] | None:
    async with runtime.db.unit_of_work(read_only=True) as uow:
        return (await uow.execute(sa.select(customer_feature.c.features).where(
            customer_feature.c.customer_id == customer_id))).scalar_one_or_none()


async def test_categorical_and_numeric_facts_are_kept_and_free_text_is_not(campaign_service) -> None:
    _, runtime = campaign_service
    customer_id = f"F-{uuid.uuid4().hex[:8]}"
    A = attribute_pb2.AttributeValue
    record = customer(customer_id, marital_status=A(enum_value="married"), has_housing_loan=A(bool_value=True),
                      credit_score=A(int_value=619), balance=A(decimal_value=decimal_pb2.Decimal(value="12.5")),
                      nickname=A(string_value="Bob"))
    async with runtime.db.unit_of_work() as uow:
        assert await customer_features.apply(uow, event(record))
        assert not await customer_features.apply(uow, change_event_pb2.ChangeEvent(
            resource_type="crm.profile.v1.ConsentRecord", resource_name=f"customers/{customer_id}"))
    assert await features(runtime, customer_id) == {
        "occupation": "technician", "attributes.marital_status": "married", "attributes.has_housing_loan": True,
        "attributes.credit_score": 619.0, "attributes.balance": 12.5}
    async with runtime.db.unit_of_work() as uow:
        assert await customer_features.apply(uow, event(record, E.CHANGE_TYPE_DELETED))
    assert await features(runtime, customer_id) == {}
