"""RiskService churn model registry RPCs through a real in-process server and PostgreSQL: training
as an operation in a spawned worker on a slice of the real churn file, the registered version,
promotion with four eyes, and bad input failing the operation with a clear status."""

from __future__ import annotations

import asyncio
import csv
import uuid
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2

from crm.common.v1 import operation_pb2
from crm.risk.v1 import churn_model_pb2 as cm
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crm_risk import tables
from crm_risk.api.churn_model_messages import to_proto, to_spec
from crm_risk.registry.service import ChurnRegistry
from crmkit.auth import Principal, Role
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import Outbox
from crmkit.testing import (
    bearer,
    change_feed,
    error_reason,
    eventually,
    field_violations,
    read_changes,
    shared_data_dir,
)

TRAINER = bearer(Role.RISK_OFFICER, subject="ro-trainer")
REVIEWER = bearer(Role.RISK_OFFICER, subject="ro-reviewer")
ROWS = 2000
FEATURES = ("CreditScore", "Geography", "Gender", "Age", "Tenure", "Balance", "NumOfProducts", "HasCrCard",
            "IsActiveMember", "EstimatedSalary")


def write_slice(directory: Path, name: str, *, rows: int = ROWS, label: str | None = None,
                positives: int | None = None) -> str:
    """The first `rows` customers of the churn file into the training directory; `label` forces
    every Exited cell (one-class data); `positives` keeps only that many churned customers."""
    source = shared_data_dir("Churn_Modelling.csv") / "Churn_Modelling.csv"
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        body = [row for _, row in zip(range(rows), reader, strict=False)]
    if label is not None:
        exited = header.index("Exited")
        for row in body:
            row[exited] = label
    if positives is not None:
        exited = header.index("Exited")
        churned = [row for row in body if row[exited] == "1"]
        for row in churned[positives:]:
            row[exited] = "0"
    with (directory / name).open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    return name


def spec(file: str, **overrides: object) -> cm.TrainingSpec:
    values: dict[str, object] = dict(
        algorithm=cm.MODEL_ALGORITHM_GRADIENT_BOOSTING, features=FEATURES, label_attribute="Exited",
        data_mode=cm.TRAINING_DATA_MODE_SNAPSHOT, random_seed=7, hyperparameters={"max_iter": "60"},
        snapshot=cm.SnapshotSource(file=file, id_attribute="CustomerId",
                                   categorical_features=["Geography", "Gender"], age_attribute="Age",
                                   gender_attribute="Gender", region_attribute="Geography"))
    values.update(overrides)
    return cm.TrainingSpec(**values)  # type: ignore[arg-type]


async def train(risk, training_spec: cm.TrainingSpec) -> operation_pb2.Operation:  # type: ignore[no-untyped-def]
    """Start training and follow the operation to its final state."""
    started = await risk.TrainChurnModel(pb.TrainChurnModelRequest(spec=training_spec, request_id=str(uuid.uuid4())),
                                         metadata=TRAINER)
    assert started.operation.kind == "risk.train"
    final = started.operation
    async for update in risk.WatchOperation(pb.WatchOperationRequest(name=started.operation.name),
                                            metadata=TRAINER, timeout=300):
        final = update.operation
    return final


def model_of(operation: operation_pb2.Operation) -> cm.ChurnModel:
    model = cm.ChurnModel()
    assert operation.response.Unpack(model)
    return model


@pytest.fixture(scope="module")
async def trained(risk_service, training_dir) -> operation_pb2.Operation:  # type: ignore[no-untyped-def]
    stub = risk_service_pb2_grpc.RiskServiceStub(risk_service[0])
    return await train(stub, spec(write_slice(training_dir, "slice.csv")))


async def test_training_succeeds_and_registers_a_candidate_with_metrics_and_fairness(risk, trained) -> None:
    assert trained.state == operation_pb2.OPERATION_STATE_SUCCEEDED, trained.error.message
    model = (await risk.GetChurnModel(pb.GetChurnModelRequest(name=model_of(trained).name),
                                      metadata=REVIEWER)).churn_model
    assert model == model_of(trained), "the operation's response is the registered model"
    assert model.status == cm.CHURN_MODEL_STATUS_CANDIDATE
    assert model.training_operation == trained.name and model.creator == "ro-trainer"
    assert model.metrics.training_rows + model.metrics.validation_rows == ROWS
    assert model.metrics.roc_auc > 0.75, "2,000 real customers are enough for a useful model"
    assert 0 < model.metrics.positive_rate < 0.5 and model.metrics.top_decile_lift > 1.5
    assert len(model.training_data_sha256) == 64 and len(model.artifact_sha256) == 64
    assert model.framework_version.startswith("scikit-learn ")
    assert "Geography=Germany" in {f.name for f in model.features}
    assert model.training_spec.random_seed == 7 and model.training_spec.validation_fraction == 0.2
    dimensions = {g.dimension for g in model.fairness.groups}
    assert dimensions == {"age_band", "gender", "region"}
    assert {g.group for g in model.fairness.groups if g.dimension == "gender"} == {"Female", "Male"}
    assert model.fairness.ratio == 0.9, "the service's configured ratio (CRM_RISK_TRAINING_FAIRNESS_RATIO)"
    assert model.fairness.threshold == model.band_thresholds.high_min_probability
    listed = (await risk.ListChurnModels(pb.ListChurnModelsRequest(), metadata=REVIEWER)).churn_models
    assert model.name in [m.name for m in listed]


async def test_promotion_needs_a_second_person_and_makes_the_model_active(risk, trained) -> None:
    name = model_of(trained).name
    with pytest.raises(grpc.aio.AioRpcError) as own:
        await risk.PromoteChurnModel(pb.PromoteChurnModelRequest(name=name, reason="validated"), metadata=TRAINER)
    assert own.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(own.value) == "SELF_PROMOTION"

    promoted = await risk.PromoteChurnModel(
        pb.PromoteChurnModelRequest(name=name, reason="AUC and fairness reviewed", etag=model_of(trained).etag),
        metadata=REVIEWER)
    assert promoted.churn_model.status == cm.CHURN_MODEL_STATUS_ACTIVE
    assert promoted.churn_model.promoter == "ro-reviewer"
    assert promoted.churn_model.status_reason == "AUC and fairness reviewed"
    active = (await risk.GetChurnModel(pb.GetChurnModelRequest(name="churnModels/active"),
                                       metadata=REVIEWER)).churn_model
    assert active.name == name, "the alias answers with the model's real name"
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await risk.PromoteChurnModel(pb.PromoteChurnModelRequest(name=name, reason="again"), metadata=REVIEWER)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_unknown_feature_fails_the_operation_naming_it(risk, training_dir) -> None:
    file = write_slice(training_dir, "unknown.csv", rows=300)
    final = await train(risk, spec(file, features=[*FEATURES, "ShoeSize"]))
    assert final.state == operation_pb2.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "ShoeSize" in final.error.message + str(_violations(final))


async def test_one_class_labels_fail_the_operation_with_failed_precondition(risk, training_dir) -> None:
    before = (await risk.ListChurnModels(pb.ListChurnModelsRequest(), metadata=REVIEWER)).churn_models
    final = await train(risk, spec(write_slice(training_dir, "one-class.csv", rows=300, label="0")))
    assert final.state == operation_pb2.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "one class" in final.error.message
    after = (await risk.ListChurnModels(pb.ListChurnModelsRequest(), metadata=REVIEWER)).churn_models
    assert len(after) == len(before), "a failed training registers nothing"


async def test_a_missing_snapshot_file_fails_the_operation(risk) -> None:
    final = await train(risk, spec("absent.csv"))
    assert final.state == operation_pb2.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "absent.csv" in final.error.message


async def test_bad_specs_are_refused_at_once_naming_each_field(risk) -> None:
    bad = spec("../etc/passwd", algorithm=cm.MODEL_ALGORITHM_RANDOM_FOREST, label_attribute="",
               validation_fraction=0.9)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await risk.TrainChurnModel(pb.TrainChurnModelRequest(spec=bad), metadata=TRAINER)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {
        "spec.algorithm", "spec.label_attribute", "spec.snapshot.file", "spec.validation_fraction"}


async def test_an_unknown_model_is_not_found(risk) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await risk.GetChurnModel(pb.GetChurnModelRequest(name=f"churnModels/{uuid.uuid4()}"), metadata=REVIEWER)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def _violations(operation: operation_pb2.Operation) -> list[str]:
    found = []
    for detail in operation.error.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found += [f"{v.field}: {v.description}" for v in bad.field_violations]
    return found


async def test_a_repeated_request_id_returns_the_first_operation(risk) -> None:
    request = pb.TrainChurnModelRequest(spec=spec("replayed.csv"), request_id=str(uuid.uuid4()))
    first = await risk.TrainChurnModel(request, metadata=TRAINER)
    second = await risk.TrainChurnModel(request, metadata=TRAINER)
    assert second.operation.name == first.operation.name


async def test_a_promotion_waiting_on_another_retires_the_model_that_one_made_active(
        risk, risk_service, trained, training_dir) -> None:  # type: ignore[no-untyped-def]
    """The second promotion must see the first's new active model once it commits: reading the
    active row after waiting on the old one's lock found none (it had just been retired) and broke
    the one-active index."""
    _, runtime = risk_service
    registry = ChurnRegistry(db=runtime.db, operations=None, runner=None,  # type: ignore[arg-type]  # promote uses neither
                             idempotency=IdempotencyKeys(tables.idempotency_key), page_tokens=None,  # type: ignore[arg-type]
                             training_dir="", cv_folds=0, spec_message=to_spec, model_message=to_proto,
                             outbox=Outbox(tables.outbox_event))
    file = write_slice(training_dir, "race.csv", rows=600)
    first, second = [model_of(await train(risk, spec(file, random_seed=seed))) for seed in (11, 12)]
    reviewer = Principal(subject="ro-reviewer", roles=frozenset({Role.RISK_OFFICER}))

    async def promote(model: cm.ChurnModel) -> None:
        async with runtime.db.unit_of_work() as uow:
            await registry.promote(uow=uow, churn_model_id=model.churn_model_id, reason="race", etag="",
                                   request_id=None, message=pb.PromoteChurnModelRequest(), actor=reviewer)

    async with runtime.db.unit_of_work() as uow:
        await registry.promote(uow=uow, churn_model_id=first.churn_model_id, reason="race", etag="",
                               request_id=None, message=pb.PromoteChurnModelRequest(), actor=reviewer)
        waiting = asyncio.create_task(promote(second))
        await eventually(lambda: _lock_waiters(runtime), what="the second promotion waiting on a lock")
    await waiting
    active = (await risk.ListChurnModels(pb.ListChurnModelsRequest(status=cm.CHURN_MODEL_STATUS_ACTIVE),
                                         metadata=REVIEWER)).churn_models
    assert [m.name for m in active] == [second.name]
    retired = (await risk.GetChurnModel(pb.GetChurnModelRequest(name=first.name), metadata=REVIEWER)).churn_model
    assert retired.status == cm.CHURN_MODEL_STATUS_RETIRED


async def _lock_waiters(runtime) -> int:  # type: ignore[no-untyped-def]
    async with runtime.db.engine.connect() as connection:
        return (await connection.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"))).scalar_one()


async def test_too_few_positives_fail_the_operation_and_register_nothing(risk, training_dir) -> None:
    before = (await risk.ListChurnModels(pb.ListChurnModelsRequest(), metadata=REVIEWER)).churn_models
    final = await train(risk, spec(write_slice(training_dir, "few.csv", rows=600, positives=20)))
    assert final.state == operation_pb2.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "20 churned" in final.error.message and "at least 50" in final.error.message
    after = (await risk.ListChurnModels(pb.ListChurnModelsRequest(), metadata=REVIEWER)).churn_models
    assert len(after) == len(before)


async def test_an_unknown_label_field_fails_the_operation_naming_it(risk, training_dir) -> None:
    final = await train(risk, spec(write_slice(training_dir, "label.csv", rows=300), label_attribute="Churned"))
    assert final.state == operation_pb2.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert any(v.startswith("label_attribute:") and "Churned" in v for v in _violations(final))


@pytest.fixture(scope="module")
async def pair(risk_service, training_dir) -> list[cm.ChurnModel]:  # type: ignore[no-untyped-def]
    stub = risk_service_pb2_grpc.RiskServiceStub(risk_service[0])
    file = write_slice(training_dir, "pair.csv", rows=600)
    return [model_of(await train(stub, spec(file, random_seed=seed))) for seed in (21, 22)]


async def test_rolling_back_promotes_the_retired_model_again_and_the_active_one_cannot_be_retired(
        risk, pair) -> None:  # type: ignore[no-untyped-def]
    first, second = pair
    await risk.PromoteChurnModel(pb.PromoteChurnModelRequest(name=first.name, reason="first"), metadata=REVIEWER)
    await risk.PromoteChurnModel(pb.PromoteChurnModelRequest(name=second.name, reason="second"), metadata=REVIEWER)
    rolled = await risk.PromoteChurnModel(
        pb.PromoteChurnModelRequest(name=first.name, reason="roll back: second drifted"), metadata=REVIEWER)
    assert rolled.churn_model.status == cm.CHURN_MODEL_STATUS_ACTIVE and rolled.previous_model == second.name
    assert rolled.churn_model.status_reason == "roll back: second drifted"
    assert not rolled.churn_model.HasField("retire_time")
    active = (await risk.GetChurnModel(pb.GetChurnModelRequest(name="churnModels/active"),
                                       metadata=REVIEWER)).churn_model
    assert active.name == first.name

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await risk.RetireChurnModel(pb.RetireChurnModelRequest(name=first.name, reason="no"), metadata=REVIEWER)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(refused.value) == "MODEL_ACTIVE"
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await risk.RetireChurnModel(pb.RetireChurnModelRequest(name=second.name, reason="no"), metadata=REVIEWER)
    assert error_reason(again.value) == "MODEL_ALREADY_RETIRED"
    still = (await risk.GetChurnModel(pb.GetChurnModelRequest(name=first.name), metadata=REVIEWER)).churn_model
    assert still.status == cm.CHURN_MODEL_STATUS_ACTIVE and still.etag == rolled.churn_model.etag, "nothing changed"


async def test_retiring_a_candidate_keeps_the_reason_and_publishes_it(risk, training_dir) -> None:
    candidate = model_of(await train(risk, spec(write_slice(training_dir, "retire.csv", rows=600))))
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await risk.RetireChurnModel(pb.RetireChurnModelRequest(name=candidate.name, reason="x", etag="999"),
                                    metadata=REVIEWER)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as reasonless:
        await risk.RetireChurnModel(pb.RetireChurnModelRequest(name=candidate.name, reason=" "), metadata=REVIEWER)
    assert set(field_violations(reasonless.value)) == {"reason"}
    unchanged = (await risk.GetChurnModel(pb.GetChurnModelRequest(name=candidate.name), metadata=REVIEWER)).churn_model
    assert unchanged.status == cm.CHURN_MODEL_STATUS_CANDIDATE and unchanged.etag == candidate.etag

    request = pb.RetireChurnModelRequest(name=candidate.name, reason="fairness flag on age band",
                                         etag=candidate.etag, request_id=str(uuid.uuid4()))
    retired = (await risk.RetireChurnModel(request, metadata=TRAINER)).churn_model
    assert retired.status == cm.CHURN_MODEL_STATUS_RETIRED and retired.HasField("retire_time")
    assert retired.status_reason == "fairness flag on age band"
    replay = (await risk.RetireChurnModel(request, metadata=TRAINER)).churn_model
    assert replay.name == retired.name and replay.etag == retired.etag, "a retry returns the first result"
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await risk.RetireChurnModel(pb.RetireChurnModelRequest(name=f"churnModels/{uuid.uuid4()}", reason="x"),
                                    metadata=REVIEWER)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    feed = change_feed(risk, pb.WatchChangesRequest, bearer(Role.SERVICE))
    events = await read_changes(feed(resource_types=["crm.risk.v1.ChurnModel"]),
                                until=lambda seen: any(e.resource_name == candidate.name for e in seen))
    published = cm.ChurnModel()
    assert [e for e in events if e.resource_name == candidate.name][-1].payload.Unpack(published)
    assert published.status == cm.CHURN_MODEL_STATUS_RETIRED
