"""Training a churn model on risk's customer read model (`SnapshotSource.read_model`): customers
as profile publishes them after importing Churn_Modelling.csv with its mapping
(services/profile/mappings/churn_modelling.json: custom attributes by id, gender, region) are
applied to the read model, and TrainChurnModel trains on them without any file."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.type import decimal_pb2, postal_address_pb2

from crm.common.v1 import change_event_pb2, operation_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2
from crm.risk.v1 import churn_model_pb2 as cm
from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.customers.repository import CustomerRepository
from crm_risk.customers.rules import AttributeNames
from crm_risk.customers.service import CustomerReadModel
from crm_risk.customers.tables import customer
from crm_risk.registry.repository import read_model_snapshot
from crmkit.auth import Role
from crmkit.testing import bearer, field_violations, shared_data_dir

TRAINER = bearer(Role.RISK_OFFICER, subject="ro-trainer")
ROWS = 1500
FEATURES = ["credit_score", "region", "gender", "age_years", "tenure_years", "account_balance", "product_count",
            "has_credit_card", "is_active_member", "estimated_salary"]
REGIONS = {"France": "FR", "Germany": "DE", "Spain": "ES"}


def imported(row: dict[str, str], prefix: str) -> customer_pb2.Customer:
    """The profile customer the import mapping makes of one row of the churn file."""
    def integer(column: str) -> attribute_pb2.AttributeValue:
        return attribute_pb2.AttributeValue(int_value=int(row[column]))

    def decimal(column: str) -> attribute_pb2.AttributeValue:
        return attribute_pb2.AttributeValue(decimal_value=decimal_pb2.Decimal(value=row[column]))

    def flag(column: str) -> attribute_pb2.AttributeValue:
        return attribute_pb2.AttributeValue(bool_value=row[column] == "1")

    customer_id = f"{prefix}{row['CustomerId']}"
    return customer_pb2.Customer(
        name=f"customers/{customer_id}", customer_id=customer_id, state=customer_pb2.CUSTOMER_STATE_ACTIVE,
        gender=customer_pb2.GENDER_FEMALE if row["Gender"] == "Female" else customer_pb2.GENDER_MALE,
        address=postal_address_pb2.PostalAddress(region_code=REGIONS[row["Geography"]]),
        attributes={"credit_score": integer("CreditScore"), "age_years": integer("Age"),
                    "tenure_years": integer("Tenure"),
                    "account_balance": decimal("Balance"), "product_count": integer("NumOfProducts"),
                    "has_credit_card": flag("HasCrCard"), "is_active_member": flag("IsActiveMember"),
                    "estimated_salary": decimal("EstimatedSalary"), "exited": flag("Exited")})


@pytest.fixture(scope="module")
async def read_model_customers(risk_service: Any) -> int:
    _, runtime = risk_service
    model = CustomerReadModel(repository=CustomerRepository(), attributes=AttributeNames())
    prefix = f"CHURN-{uuid.uuid4().hex[:6]}-"
    source = shared_data_dir("Churn_Modelling.csv") / "Churn_Modelling.csv"
    with source.open(newline="") as handle:
        rows = [row for _, row in zip(range(ROWS), csv.DictReader(handle), strict=False)]
    occurred = timestamp_pb2.Timestamp()
    occurred.FromDatetime(datetime.now(UTC))
    async with runtime.db.unit_of_work() as uow:
        for seq, row in enumerate(rows, start=1):
            packed = any_pb2.Any()
            record = imported(row, prefix)
            packed.Pack(record)
            assert await model.apply(uow, change_event_pb2.ChangeEvent(
                cursor=f"{20_000_000 + seq}.{seq}", event_id=str(uuid.uuid4()), resource_type="crm.profile.v1.Customer",
                resource_name=record.name, change_type=change_event_pb2.CHANGE_TYPE_CREATED, occurred_at=occurred,
                payload=packed, actor="system:import"))
    return len(rows)


def spec(**snapshot: Any) -> cm.TrainingSpec:
    return cm.TrainingSpec(
        algorithm=cm.MODEL_ALGORITHM_GRADIENT_BOOSTING, features=FEATURES, label_attribute="exited",
        data_mode=cm.TRAINING_DATA_MODE_SNAPSHOT, random_seed=7, hyperparameters={"max_iter": "60"},
        snapshot=cm.SnapshotSource(**{"read_model": True, "categorical_features": ["region", "gender"],
                                      "age_attribute": "age_years", "gender_attribute": "gender",
                                      "region_attribute": "region", **snapshot}))


async def test_a_model_trains_on_the_customers_profile_imported(risk: Any, read_model_customers: int) -> None:
    started = await risk.TrainChurnModel(pb.TrainChurnModelRequest(spec=spec(), request_id=str(uuid.uuid4())),
                                         metadata=TRAINER)
    final = started.operation
    async for update in risk.WatchOperation(pb.WatchOperationRequest(name=started.operation.name),
                                            metadata=TRAINER, timeout=300):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    model = cm.ChurnModel()
    assert final.response.Unpack(model)
    assert model.training_spec.snapshot.read_model and model.training_spec.snapshot.id_attribute == "customer_id"
    # As good as the file's own model on as many rows (> 0.75): the mapping keeps the age, the
    # strongest signal of this data set (without it, about 0.68).
    assert model.metrics.roc_auc > 0.75
    assert {"region=DE", "age_years"} <= {f.name for f in model.features}
    assert {g.group for g in model.fairness.groups if g.dimension == "gender"} == {"Female", "Male"}
    assert "40-49" in {g.group for g in model.fairness.groups if g.dimension == "age_band"}
    assert model.metrics.training_rows + model.metrics.validation_rows == read_model_customers


async def test_a_read_model_spec_with_a_file_or_another_id_column_is_refused(risk: Any) -> None:
    for snapshot, field in (({"file": "churn.csv"}, "spec.snapshot.file"),
                            ({"id_attribute": "CustomerId"}, "spec.snapshot.id_attribute")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await risk.TrainChurnModel(pb.TrainChurnModelRequest(spec=spec(**snapshot)), metadata=TRAINER)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(refused.value)


async def test_the_snapshot_reads_the_age_as_scoring_does(risk_service: Any) -> None:
    """Profile's derived age (a birth date) when there is one, else the age a source stated."""
    _, runtime = risk_service
    label, today = f"left_{uuid.uuid4().hex[:8]}", datetime.now(UTC).date()
    stated, derived = f"stated-{label}", f"derived-{label}"
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(customer), [
            {"customer_id": stated, "feature_values": {label: 1.0, "age_years": 33.0}, "age_years": None,
             "age_on": None, "data_as_of": datetime.now(UTC)},
            {"customer_id": derived, "feature_values": {label: 0.0, "age_years": 33.0}, "age_years": 50,
             "age_on": today.replace(year=today.year - 2), "data_as_of": datetime.now(UTC)}])
    async with runtime.db.unit_of_work(read_only=True) as uow:
        snapshot = await read_model_snapshot(uow, label, today=today)
    age = snapshot.columns.index("age_years")
    assert {row[0]: row[age] for row in snapshot.rows} == {stated: "33", derived: "52"}
