"""Scoring through a real in-process server and PostgreSQL: a model trained (through the service)
on the real churn file under the read model's feature names scores a customer of the read model
with the drivers of their score and names its version; a written-back score is the customer's
current score (read back without scoring again) and goes on the feed when it moves; each score is
audited; bad input, a missing customer, a manager outside their book and a model that is not
active are refused with nothing stored."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.common.v1 import audit_pb2, operation_pb2
from crm.risk.v1 import churn_model_pb2 as cm
from crm.risk.v1 import decision_audit_pb2 as da
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crm.risk.v1 import scoring_pb2 as sc
from crm_risk.app import SPEC
from crm_risk.customers.tables import customer
from crmkit.auth import Role
from crmkit.testing import (
    bearer,
    error_reason,
    field_violations,
    migrated_database,
    rows_about,
    running_service,
    shared_data_dir,
)

TRAINER = bearer(Role.RISK_OFFICER, subject="ro-scoring-trainer")
REVIEWER = bearer(Role.RISK_OFFICER, subject="ro-scoring-reviewer")
RISK = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_RISK, justification="retention review")
FEATURES = ("credit_score", "region", "gender", "age_years", "tenure_years", "account_balance", "product_count",
            "has_credit_card", "is_active_member", "estimated_salary")
REGIONS = {"France": "FR", "Germany": "DE", "Spain": "ES"}


def write_read_model_slice(directory: Path, rows: int = 2000) -> tuple[str, list[dict[str, Any]]]:
    """The churn file under the names risk's read model gives its features (profile's mapping of
    the file: attributes by id, gender, region), and the next customers as read-model values."""
    source = shared_data_dir("Churn_Modelling.csv") / "Churn_Modelling.csv"
    with source.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    converted = [{
        "customer_id": f"CHURN-{r['CustomerId']}", "credit_score": r["CreditScore"], "region": REGIONS[r["Geography"]],
        "gender": r["Gender"], "age_years": r["Age"], "tenure_years": r["Tenure"], "account_balance": r["Balance"],
        "product_count": r["NumOfProducts"], "has_credit_card": r["HasCrCard"], "is_active_member": r["IsActiveMember"],
        "estimated_salary": r["EstimatedSalary"], "exited": r["Exited"]} for r in records]
    name = "read-model-names.csv"
    with (directory / name).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(converted[0]))
        writer.writeheader()
        writer.writerows(converted[:rows])
    return name, converted[rows:rows + 20]


async def follow(risk, started: pb.TrainChurnModelResponse) -> operation_pb2.Operation:  # type: ignore[no-untyped-def]
    final = started.operation
    async for update in risk.WatchOperation(pb.WatchOperationRequest(name=final.name), metadata=TRAINER, timeout=300):
        final = update.operation
    return final


@pytest.fixture(scope="module")
async def scoring_model(risk_service, training_dir) -> tuple[cm.ChurnModel, list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    risk = risk_service_pb2_grpc.RiskServiceStub(risk_service[0])
    file, unseen = write_read_model_slice(training_dir)
    spec = cm.TrainingSpec(
        algorithm=cm.MODEL_ALGORITHM_GRADIENT_BOOSTING, features=FEATURES, label_attribute="exited",
        data_mode=cm.TRAINING_DATA_MODE_SNAPSHOT, random_seed=3, hyperparameters={"max_iter": "60"},
        snapshot=cm.SnapshotSource(file=file, id_attribute="customer_id", categorical_features=["region", "gender"]))
    final = await follow(risk, await risk.TrainChurnModel(pb.TrainChurnModelRequest(spec=spec), metadata=TRAINER))
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    model = cm.ChurnModel()
    final.response.Unpack(model)
    return model, unseen


@pytest.fixture
async def seed(risk_service, scoring_model) -> Any:  # type: ignore[no-untyped-def]
    """`await seed(i, rm=...)`: the i-th unseen customer of the file in the read model, by name."""
    _, runtime = risk_service
    _, unseen = scoring_model

    async def insert(i: int, *, rm: str = "rm-1") -> str:
        row = unseen[i]
        customer_id = f"{row['customer_id']}-{uuid.uuid4().hex[:6]}"
        values: dict[str, str | float] = {k: (v if k in ("region", "gender") else float(v))
                                          for k, v in row.items() if k not in ("customer_id", "exited", "age_years")}
        async with runtime.db.unit_of_work() as uow:
            await uow.execute(sa.insert(customer).values(
                customer_id=customer_id, relationship_manager_id=rm, branch_id="b-1", age_years=int(row["age_years"]),
                age_on=datetime.now(UTC).date(), feature_values=values, data_as_of=datetime.now(UTC)))
        return f"customers/{customer_id}"

    return insert


async def test_a_customer_is_scored_with_drivers_naming_the_model_and_audited(risk, scoring_model, seed) -> None:
    model, _ = scoring_model
    name = await seed(0)
    score = (await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer=name, model=model.name, max_drivers=3,
                                                              audit=RISK), metadata=REVIEWER)).score
    assert score.model == model.name and score.model_version == model.version
    assert 0 < score.probability < 1 and score.risk_band != sc.RISK_BAND_UNSPECIFIED
    expected_band = (sc.RISK_BAND_HIGH if score.probability >= model.band_thresholds.high_min_probability else
                     sc.RISK_BAND_MEDIUM if score.probability >= model.band_thresholds.medium_min_probability else
                     sc.RISK_BAND_LOW)
    assert score.risk_band == expected_band
    assert len(score.top_drivers) <= 3 and all(d.contribution >= 0.01 for d in score.top_drivers)
    assert all(d.feature in FEATURES and d.reference_value for d in score.top_drivers)
    assert score.HasField("features_as_of") and score.HasField("score_time")
    [audit] = (await risk.ListDecisionAudits(pb.ListDecisionAuditsRequest(
        customer=name, decision_type=da.DECISION_TYPE_CHURN_SCORE), metadata=bearer(Role.AUDITOR))).decision_audits
    assert audit.name == score.decision_audit and audit.decided_by == model.name
    assert audit.decider_version == str(model.version) and audit.inputs["age_years"] > 0
    with pytest.raises(grpc.aio.AioRpcError) as none:
        await risk.GetChurnScore(pb.GetChurnScoreRequest(customer=name), metadata=REVIEWER)
    assert error_reason(none.value) == "NO_CURRENT_SCORE", "scoring without write-back stores nothing"


async def test_a_written_back_score_is_the_current_one_and_goes_on_the_feed_once(
        risk, risk_service, scoring_model, seed) -> None:
    model, _ = scoring_model
    name = await seed(1)
    with pytest.raises(grpc.aio.AioRpcError) as candidate:
        await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer=name, model=model.name, write_back=True,
                                                         audit=RISK), metadata=REVIEWER)
    if model.status != cm.CHURN_MODEL_STATUS_ACTIVE:
        assert error_reason(candidate.value) == "MODEL_NOT_ACTIVE"
    assert await rows_about(risk_service, "outbox_event", name) == 0
    await risk.PromoteChurnModel(pb.PromoteChurnModelRequest(name=model.name, reason="scoring test"),
                                 metadata=REVIEWER)

    request = pb.ScoreCustomerRequest(customer=name, write_back=True, audit=RISK, request_id=str(uuid.uuid4()))
    written = (await risk.ScoreCustomer(request, metadata=REVIEWER)).score
    assert written.model == model.name, "no model named: the active one"
    current = (await risk.GetChurnScore(pb.GetChurnScoreRequest(customer=name),
                                        metadata=bearer(Role.CHANNEL_APP))).score
    assert current == written
    replayed = (await risk.ScoreCustomer(request, metadata=REVIEWER)).score
    assert replayed.decision_audit == written.decision_audit, "a retry returns the stored score"
    again = (await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer=name, write_back=True, audit=RISK),
                                      metadata=REVIEWER)).score
    assert again.probability == pytest.approx(written.probability) and again.decision_audit != written.decision_audit
    assert await rows_about(risk_service, "outbox_event", name) == 1, "an unchanged score is not published again"


async def test_bad_requests_and_unknown_or_foreign_customers_are_refused(risk, scoring_model, seed) -> None:
    model, _ = scoring_model
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer="people/1", model="models/x", max_drivers=50,
                                                         request_id="nope"), metadata=REVIEWER)
    assert set(field_violations(bad.value)) == {"customer", "model", "max_drivers", "audit.purpose", "request_id"}
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer="customers/nobody", model=model.name, audit=RISK),
                                 metadata=REVIEWER)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    name = await seed(2, rm="rm-someone-else")
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer=name, model=model.name, audit=RISK),
                                 metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-1"))
    assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await risk.ListDecisionAudits(pb.ListDecisionAuditsRequest(customer=name),
                                          metadata=bearer(Role.AUDITOR))).decision_audits == []


async def test_scoring_without_an_active_model_is_a_failed_precondition(database_factory) -> None:
    url = await migrated_database(database_factory, SPEC)
    async with running_service(SPEC, database_url=url, profile_target="", alert_escalation_poll_seconds=0
                               ) as (channel, _):
        risk = risk_service_pb2_grpc.RiskServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as none:
            await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer="customers/c-1", audit=RISK),
                                     metadata=REVIEWER)
        assert none.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(none.value) == "NO_ACTIVE_MODEL"


async def test_batch_scoring_writes_back_each_customer_and_publishes_only_changes(
        risk, risk_service, scoring_model, seed) -> None:
    model, _ = scoring_model
    try:  # other tests of the module may have promoted it already; alone, none is active
        active = (await risk.GetChurnModel(pb.GetChurnModelRequest(name="churnModels/active"),
                                           metadata=REVIEWER)).churn_model.name
    except grpc.aio.AioRpcError:
        active = ""
    if active != model.name:
        await risk.PromoteChurnModel(pb.PromoteChurnModelRequest(name=model.name, reason="batch test"),
                                     metadata=REVIEWER)
    rm = f"rm-{uuid.uuid4().hex[:6]}"
    names = [await seed(i, rm=rm) for i in range(3, 8)]
    request = pb.ScoreCustomersRequest(relationship_manager_id=rm, request_id=str(uuid.uuid4()))
    started = await risk.ScoreCustomers(request, metadata=REVIEWER)
    assert started.operation.kind == "risk.score"
    assert (await risk.ScoreCustomers(request, metadata=REVIEWER)).operation.name == started.operation.name
    final = await follow(risk, started)
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    result = sc.ScoreCustomersResult()
    assert final.response.Unpack(result)
    assert (result.model, result.scored_customers, result.failed_customers) == (model.name, 5, 0)
    assert result.low_band_customers + result.medium_band_customers + result.high_band_customers == 5
    assert result.written_back and final.progress.done == 5
    for name in names:
        current = (await risk.GetChurnScore(pb.GetChurnScoreRequest(customer=name), metadata=REVIEWER)).score
        assert current.model == model.name and current.decision_audit
        assert await rows_about(risk_service, "outbox_event", name) == 1
        single = (await risk.ScoreCustomer(pb.ScoreCustomerRequest(customer=name, model=model.name, audit=RISK),
                                           metadata=REVIEWER)).score
        # The same inputs both ways, the age from profile's features included (batch once lacked it).
        assert single.probability == pytest.approx(current.probability, abs=1e-9)

    again = await follow(risk, await risk.ScoreCustomers(pb.ScoreCustomersRequest(
        customers=[*names, "customers/nobody-here"]), metadata=REVIEWER))
    assert again.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert again.response.Unpack(result) and (result.scored_customers, result.failed_customers) == (5, 1)
    for name in names:
        assert await rows_about(risk_service, "outbox_event", name) == 1, "unchanged scores are not published again"


async def test_bad_batch_requests_are_refused_and_start_nothing(risk, scoring_model) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await risk.ScoreCustomers(pb.ScoreCustomersRequest(customers=["customers/a", "customers/a", "x"],
                                                           model="models/1", request_id="no"), metadata=REVIEWER)
    assert set(field_violations(bad.value)) == {"customers", "customers[2]", "model", "request_id"}
    before = (await risk.ListOperations(pb.ListOperationsRequest(kind="risk.score"), metadata=REVIEWER)).operations
    candidate = (await risk.ListChurnModels(pb.ListChurnModelsRequest(status=cm.CHURN_MODEL_STATUS_CANDIDATE),
                                            metadata=REVIEWER)).churn_models
    if candidate:
        with pytest.raises(grpc.aio.AioRpcError) as inactive:
            await risk.ScoreCustomers(pb.ScoreCustomersRequest(model=candidate[0].name), metadata=REVIEWER)
        assert error_reason(inactive.value) == "MODEL_NOT_ACTIVE"
    after = (await risk.ListOperations(pb.ListOperationsRequest(kind="risk.score"), metadata=REVIEWER)).operations
    assert len(after) == len(before)
