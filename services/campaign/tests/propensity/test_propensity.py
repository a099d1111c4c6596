"""TrainPropensityModel and GetPropensityModel through CampaignService: a model per offer type
trained in a worker process on imported contacts, versioned with its held-out metrics."""

from __future__ import annotations

import random
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import contact_import_pb2 as ci
from crm.campaign.v1 import propensity_pb2 as pp
from crm.common.v1 import change_event_pb2, operation_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2
from crm_campaign.propensity import customer_features
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")


def calls(count: int, *, seed: int) -> str:
    """A history where younger customers reached on the app accept more often."""
    rng = random.Random(seed)
    lines = ["id;channel;month;attempt;age;y\n"]
    for i in range(count):
        channel, age = rng.choice(["sms", "app"]), rng.randint(18, 80)
        chance = 0.05 + (0.35 if channel == "app" else 0.0) + (0.3 if age < 35 else 0.0)
        lines.append(f"c{i};{channel};{rng.randint(1, 12)};{rng.randint(1, 5)};{age};"
                     f"{'yes' if rng.random() < chance else 'no'}\n")
    return "".join(lines)


async def finished(campaigns: Any, started: operation_pb2.Operation) -> operation_pb2.Operation:
    final = started
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.name), metadata=ANALYST,
                                                 timeout=180):
        final = update.operation
    return final


async def import_calls(campaigns: Any, content: str, offer_type: str) -> None:
    columns = [
        ci.ContactColumnMapping(column="channel", field="channel", value_map={"sms": "SMS", "app": "MOBILE_APP"}),
        ci.ContactColumnMapping(column="month", field="contact_month"),
        ci.ContactColumnMapping(column="attempt", field="attempt_number"),
        ci.ContactColumnMapping(column="age", context="age", context_type=ci.CONTACT_CONTEXT_TYPE_NUMBER),
        ci.ContactColumnMapping(column="y", field="outcome", value_map={"yes": "ACCEPTED", "no": "DECLINED"}),
    ]
    started = (await campaigns.ImportContactHistory(ci.ImportContactHistoryRequest(
        file_name="calls.csv", content=content.encode(), csv_options=ci.ContactCsvOptions(delimiter=";"),
        mapping=ci.ContactImportMapping(customer_id=ci.ContactCustomerIdMapping(column="id", prefix="P-"),
                                        offer_type=offer_type, columns=columns),
        mode=ci.CONTACT_IMPORT_MODE_STRICT, source_system="test-propensity"), metadata=MARKETER)).operation
    assert (await finished(campaigns, started)).state == operation_pb2.OPERATION_STATE_SUCCEEDED


async def train(campaigns: Any, offer_type: str, **fields: Any) -> operation_pb2.Operation:
    started = (await campaigns.TrainPropensityModel(pp.TrainPropensityModelRequest(
        offer_type=offer_type, request_id=str(uuid.uuid4()), **fields), metadata=ANALYST)).operation
    assert started.kind == "campaign.propensity_training"
    return await finished(campaigns, started)


async def test_a_model_is_trained_per_offer_type_and_versioned_with_its_metrics(campaigns, count_rows) -> None:
    offer_type = f"card-{uuid.uuid4().hex[:8]}"
    await import_calls(campaigns, calls(1500, seed=7), offer_type)

    final = await train(campaigns, offer_type, seed=3)
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    trained = pp.PropensityModel()
    assert final.response.Unpack(trained)
    assert (trained.name, trained.version, trained.creator) == (
        f"propensityModels/{offer_type}/versions/1", 1, "analyst-1")
    assert trained.metrics.held_out_rows == 300 and trained.metrics.training_rows == 1200
    assert trained.metrics.roc_auc > 0.7  # the planted signal is found
    assert 0 < trained.metrics.brier_score < 0.25 and 0 <= trained.metrics.expected_calibration_error < 0.1
    assert "context.age" in trained.features and "channel" in trained.features
    assert len(trained.data_fingerprint) == 64

    second = await train(campaigns, offer_type, seed=3, held_out_fraction=0.3)
    assert second.state == operation_pb2.OPERATION_STATE_SUCCEEDED, second.error.message
    latest = (await campaigns.GetPropensityModel(pp.GetPropensityModelRequest(
        name=f"propensityModels/{offer_type}/versions/latest"), metadata=MARKETER)).propensity_model
    assert (latest.version, latest.metrics.held_out_rows) == (2, 450)
    assert latest.data_fingerprint == trained.data_fingerprint  # the same contacts
    first = (await campaigns.GetPropensityModel(pp.GetPropensityModelRequest(
        name=f"propensityModels/{offer_type}/versions/1"), metadata=ANALYST)).propensity_model
    assert first == trained


async def test_too_few_contacts_fail_the_training_and_register_nothing(campaigns, count_rows) -> None:
    offer_type = f"loan-{uuid.uuid4().hex[:8]}"
    await import_calls(campaigns, calls(50, seed=1), offer_type)
    before = await count_rows("propensity_model")
    final = await train(campaigns, offer_type)
    assert final.state == operation_pb2.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "200" in final.error.message
    assert await count_rows("propensity_model") == before
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await campaigns.GetPropensityModel(pp.GetPropensityModelRequest(
            name=f"propensityModels/{offer_type}/versions/latest"), metadata=ANALYST)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(raised.value) == "PROPENSITY_MODEL_NOT_FOUND"


async def test_bad_requests_name_their_fields_and_start_nothing(campaigns, count_rows) -> None:
    before = await count_rows("operation")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await campaigns.TrainPropensityModel(pp.TrainPropensityModelRequest(
            offer_type="Term Deposit", held_out_fraction=0.9, seed=-1), metadata=ANALYST)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(raised.value)) == {"offer_type", "held_out_fraction", "seed"}
    assert await count_rows("operation") == before
    for name in ("", "propensityModels/x/versions/0", "propensityModels/X/versions/1"):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns.GetPropensityModel(pp.GetPropensityModelRequest(name=name), metadata=ANALYST)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(raised.value)) == {"name"}


async def test_who_may_train_and_read(campaigns) -> None:
    for role in (Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.AUDITOR):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns.TrainPropensityModel(pp.TrainPropensityModelRequest(offer_type="x"),
                                                 metadata=bearer(role))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for role in (Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns.GetPropensityModel(pp.GetPropensityModelRequest(
                name="propensityModels/x/versions/latest"), metadata=bearer(role))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def customer_event(customer_id: str, **attributes: attribute_pb2.AttributeValue) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(customer_pb2.Customer(name=f"customers/{customer_id}", customer_id=customer_id,
                                      occupation="technician", attributes=attributes))
    return change_event_pb2.ChangeEvent(resource_type=customer_features.CUSTOMER_TYPE,
                                        resource_name=f"customers/{customer_id}",
                                        change_type=change_event_pb2.CHANGE_TYPE_UPDATED, payload=packed)


async def test_training_reads_the_customers_features(campaigns, campaign_service) -> None:
    _, runtime = campaign_service
    offer_type = f"fund-{uuid.uuid4().hex[:8]}"
    rng = random.Random(5)
    await import_calls(campaigns, "id;channel;month;attempt;age;y\n" + "".join(
        f"c{i};sms;{rng.randint(1, 12)};1;40;{'yes' if i % 3 == 0 else 'no'}\n" for i in range(600)), offer_type)
    A = attribute_pb2.AttributeValue
    async with runtime.db.unit_of_work() as uow:
        for i in range(600):  # the customers who accepted are the ones with a housing loan
            await customer_features.apply(uow, customer_event(f"P-c{i}", has_housing_loan=A(bool_value=i % 3 == 0)))
    started = (await campaigns.TrainPropensityModel(pp.TrainPropensityModelRequest(offer_type=offer_type),
                                                    metadata=MARKETER)).operation
    final = await finished(campaigns, started)
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    model = pp.PropensityModel()
    assert final.response.Unpack(model)
    assert "customer.attributes.has_housing_loan" in model.features
    assert "customer.occupation" not in model.features  # the same for everyone: nothing to learn
    assert model.metrics.roc_auc > 0.95

