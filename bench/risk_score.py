"""risk-score: batch churn scoring of N customers (1,000,000 by default) with write-back and change
events, against the work no batch can skip; and one customer's score with drivers at concurrency 4.

The risk service runs as its own process (`python -m crm_risk serve`, following no profile feed)
on a fresh, migrated database. Its customer read model is loaded by one COPY, as profile's feed
leaves it: the 10,000 customers of `Churn_Modelling.csv` under the read model's feature names
(profile's mapping of the file) with their `exited` label, and N - 10,000 more drawn from them
(each a real row's categories and numbers moved by a little noise), without a label. A model is
trained on the labelled ones through `TrainChurnModel` (the default recipe), promoted by a second
risk officer (`PromoteChurnModel`), and then `ScoreCustomers` scores every customer: timed from
the request to the operation's SUCCEEDED (polled every 50 ms). Every customer is scored for the
first time, so every score is written back and goes on the feed (N current scores, N decision
audits, N change events); the bench fails unless all N were scored and published.

Floor, in the same run before the batch: the promoted model's own `predict_proba` over the same
customers' feature matrix (the artifact read from the registry, one thread, as the service runs
it), plus a raw COPY of N score rows (with their drivers) and N change events into the service's
own (empty) tables, emptied again afterwards. Headline: `batch_seconds` over that floor (goal
<= 30 s for 1,000,000). For information, the floor with a COPY of N decision audits too, and the
time the same predictions take with each customer's drivers (`drivers.contributions`: one more
prediction per source feature whose value is not the reference's), timed over 20,000 customers
and scaled to N.

Then `ScoreCustomer` (drivers, not written back, audited) for random customers at concurrency 4,
alternating with the bare gRPC floor in slices. Headline: its p99 (goal <= 30 ms).

`CRM_BENCH_RISK_CUSTOMERS=100000 make bench B=risk-score` runs fewer customers.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pickle
import random
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import numpy as np
from threadpoolctl import threadpool_limits

from bench.environment import free_port, run_to_completion, size_from_env
from bench.floors import bare_grpc_call, bare_grpc_server, copy_floor
from bench.harness import BenchRun, drive_alternating
from crm.common.v1 import audit_pb2, operation_pb2
from crm.risk.v1 import churn_model_pb2 as cm
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crm.risk.v1 import scoring_pb2 as sc
from crm_risk.churn import drivers
from crm_risk.churn.model import FeatureKind
from crmkit.auth import Role, issue_token
from crmkit.settings import plain_database_url
from crmkit.testing import shared_data_dir

DEFAULT_CUSTOMERS = 1_000_000
FEATURES = ("credit_score", "region", "gender", "age_years", "tenure_years", "account_balance", "product_count",
            "has_credit_card", "is_active_member", "estimated_salary")
CATEGORICAL = ("region", "gender")
REGIONS = {"France": "FR", "Germany": "DE", "Spain": "ES"}
LABEL = "exited"
SINGLE_CONCURRENCY = 4
WARMUP_SECONDS = 1.0
ROUNDS = 5
POLL_SECONDS = 0.05
TRAIN_TIMEOUT_SECONDS = 1_800.0
BATCH_TIMEOUT_SECONDS = 3_600.0
CALL_TIMEOUT_SECONDS = 10.0
# Longer than the default: on a loaded machine (load average 15 on 2 cores) the service once took
# more than a minute to import and serve.
SERVER_START_SECONDS = 180.0
COPY_PAGE = 100_000
# The predictions with drivers are timed over this many customers and scaled to all of them.
DRIVERS_SAMPLE = 20_000


def customer_count() -> int:
    return size_from_env("CRM_BENCH_RISK_CUSTOMERS", DEFAULT_CUSTOMERS, minimum=10_000,
                         why="the labelled churn file")


def service_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    """The risk service's settings as a deployment sets them, following no profile."""
    return {**os.environ, "CRM_ENV": "development", "CRM_HOST": "127.0.0.1", "CRM_JWT_SECRET": jwt_secret,
            "CRM_SHUTDOWN_GRACE_SECONDS": "2", "CRM_RISK_DATABASE_URL": database_url, "CRM_RISK_PORT": str(port),
            "CRM_RISK_PROFILE_TARGET": "", "CRM_RISK_ALERT_ESCALATION_POLL_SECONDS": "0"}


def bearer(secret: str, role: Role, subject: str) -> tuple[tuple[str, str], ...]:
    token = issue_token(secret=secret, subject=subject, roles=[role], lifetime_seconds=6 * 3600)
    return (("authorization", f"Bearer {token}"),)


def churn_rows() -> list[dict[str, str | float]]:
    """The churn file under the read model's feature names (profile's mapping of it)."""
    with (shared_data_dir("Churn_Modelling.csv") / "Churn_Modelling.csv").open(newline="") as handle:
        return [{"credit_score": float(r["CreditScore"]), "region": REGIONS[r["Geography"]], "gender": r["Gender"],
                 "age_years": float(r["Age"]), "tenure_years": float(r["Tenure"]),
                 "account_balance": float(r["Balance"]), "product_count": float(r["NumOfProducts"]),
                 "has_credit_card": float(r["HasCrCard"]), "is_active_member": float(r["IsActiveMember"]),
                 "estimated_salary": float(r["EstimatedSalary"]), LABEL: float(r["Exited"])}
                for r in csv.DictReader(handle)]


def synthetic(real: list[dict[str, str | float]], count: int) -> list[dict[str, str | float]]:
    """The real rows with their labels, then `count - len(real)` unlabelled ones drawn from them."""
    rng = random.Random(11)
    rows = list(real)
    while len(rows) < count:
        base = rng.choice(real)
        row = {k: v for k, v in base.items() if k != LABEL}
        row["credit_score"] = float(min(850, max(350, round(float(base["credit_score"]) + rng.gauss(0, 20)))))
        row["age_years"] = float(min(92, max(18, round(float(base["age_years"]) + rng.randint(-2, 2)))))
        row["account_balance"] = round(float(base["account_balance"]) * rng.uniform(0.9, 1.1), 2)
        row["estimated_salary"] = round(float(base["estimated_salary"]) * rng.uniform(0.9, 1.1), 2)
        rows.append(row)
    return rows


def customer_id(index: int) -> str:
    return f"R{index:07d}"


async def load_customers(database_url: str, rows: list[dict[str, str | float]]) -> None:
    """The read model as profile's feed leaves it, by COPY."""
    now = datetime.now(UTC)
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            for start in range(0, len(rows), COPY_PAGE):
                await connection.copy_records_to_table(
                    "customer", columns=["customer_id", "feature_values", "relationship_manager_id", "branch_id",
                                         "data_as_of"],
                    records=[(customer_id(i), json.dumps(row), f"rm-{i % 500}", f"B{i % 50}", now)
                             for i, row in enumerate(rows[start:start + COPY_PAGE], start=start)])
        await connection.execute("VACUUM ANALYZE customer")
    finally:
        await connection.close()


async def finish(stub: Any, operation: operation_pb2.Operation, metadata: Any, timeout: float
                 ) -> operation_pb2.Operation:
    started = time.perf_counter()
    while operation.state not in (operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
                                  operation_pb2.OPERATION_STATE_CANCELLED):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{operation.name} did not finish in {timeout:.0f} s")
        await asyncio.sleep(POLL_SECONDS)
        operation = (await stub.GetOperation(pb.GetOperationRequest(name=operation.name), metadata=metadata)).operation
    if operation.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        raise AssertionError(f"{operation.name} ended in state {operation.state}: {operation.error.message}")
    return operation


async def train_and_promote(stub: Any, trainer: Any, reviewer: Any) -> cm.ChurnModel:
    spec = cm.TrainingSpec(
        algorithm=cm.MODEL_ALGORITHM_GRADIENT_BOOSTING, features=list(FEATURES), label_attribute=LABEL,
        data_mode=cm.TRAINING_DATA_MODE_SNAPSHOT, random_seed=7,
        snapshot=cm.SnapshotSource(read_model=True, categorical_features=list(CATEGORICAL)))
    started = await stub.TrainChurnModel(pb.TrainChurnModelRequest(spec=spec, request_id=str(uuid.uuid4())),
                                         metadata=trainer)
    operation = await finish(stub, started.operation, trainer, TRAIN_TIMEOUT_SECONDS)
    model = cm.ChurnModel()
    operation.response.Unpack(model)
    promoted = await stub.PromoteChurnModel(pb.PromoteChurnModelRequest(
        name=model.name, reason="benchmark", request_id=str(uuid.uuid4())), metadata=reviewer)
    return promoted.churn_model


async def load_artifact(database_url: str, model: cm.ChurnModel) -> Any:
    """The promoted model as the registry stores it (the bench trusts its own database)."""
    connection = await asyncpg.connect(database_url)
    try:
        artifact = await connection.fetchval("SELECT artifact FROM churn_model WHERE churn_model_id = $1",
                                             model.name.split("/")[-1])
    finally:
        await connection.close()
    return pickle.loads(artifact)  # noqa: S301 - the artifact this run just trained


def feature_matrix(artifact: Any, rows: list[dict[str, str | float]]) -> np.ndarray:
    """The customers as the model's columns (numbers, one-hot categories), built directly."""
    encoding = artifact.encoding
    matrix = np.zeros((len(rows), len(encoding.columns)))
    position = 0
    categories = iter(encoding.categories)
    for feature in encoding.features:
        if feature.kind == FeatureKind.CATEGORICAL:
            names = next(categories)
            index = {name: position + i for i, name in enumerate(names)}
            for r, row in enumerate(rows):
                column = index.get(str(row.get(feature.name)))
                if column is not None:
                    matrix[r, column] = 1.0
            position += len(names)
            continue
        matrix[:, position] = [float(row.get(feature.name, np.nan)) for row in rows]
        position += 1
    return matrix


def predict_seconds(artifact: Any, matrix: np.ndarray, *, with_drivers: bool) -> float:
    """The model's predictions over the matrix, in the service's chunk size, one thread."""
    def predict(x: np.ndarray) -> np.ndarray:
        return artifact.model.predict_proba(x)[:, 1]

    chunk = 10_000
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        for start in range(0, len(matrix), chunk):
            part = matrix[start:start + chunk]
            if with_drivers:
                drivers.contributions(predict, part, artifact.reference)
            else:
                predict(part)
        return time.perf_counter() - started


async def write_floor(database_url: str, count: int, model: cm.ChurnModel) -> dict[str, float]:
    """Raw COPY of `count` score rows, change events and decision audits, each into its (empty)
    table, emptied again afterwards; seconds per table."""
    now = datetime.now(UTC)
    churn_model_id = model.name.split("/")[-1]
    top = [{"feature": "age_years", "value": "52", "reference": "37", "contribution": 0.21},
           {"feature": "is_active_member", "value": "0", "reference": "1", "contribution": 0.07},
           {"feature": "region", "value": "DE", "reference": "FR", "contribution": 0.05}]
    payload = sc.ChurnScore(customer="customers/R0000000", model=model.name, model_version=model.version,
                            probability=0.4321, risk_band=sc.RISK_BAND_HIGH,
                            decision_audit=f"decisionAudits/{uuid.uuid4()}")
    for d in top:
        payload.top_drivers.add(feature=d["feature"], display_value=d["value"], reference_value=d["reference"],
                                contribution=d["contribution"])
    packed = payload.SerializeToString()
    ids = [customer_id(i) for i in range(count)]
    audits = [uuid.uuid4() for _ in range(count)]
    seconds = {}
    seconds["churn_score"] = (await copy_floor(
        database_url, table="churn_score",
        columns=["customer_id", "churn_model_id", "model_version", "probability", "risk_band", "top_drivers",
                 "features_as_of", "score_time", "decision_audit", "relationship_manager_id", "branch_id"],
        records=[(c, churn_model_id, model.version, 0.4321, 3, json.dumps(top), now, now,
                  f"decisionAudits/{a}", "rm-1", "B1") for c, a in zip(ids, audits, strict=True)])).seconds
    seconds["outbox_event"] = (await copy_floor(
        database_url, table="outbox_event",
        columns=["event_id", "resource_type", "resource_name", "change_type", "payload", "actor"],
        records=[(uuid.uuid4(), "crm.risk.v1.ChurnScore", f"customers/{c}", 2, packed, "ro-trainer")
                 for c in ids])).seconds
    inputs = json.dumps({"credit_score": 619.0, "age_years": 42.0, "tenure_years": 2.0, "account_balance": 0.0,
                         "product_count": 1.0, "has_credit_card": 1.0, "is_active_member": 1.0,
                         "estimated_salary": 101348.88})
    seconds["decision_audit"] = (await copy_floor(
        database_url, table="decision_audit",
        columns=["decision_audit_id", "decision_type", "customer_id", "decided_by", "decider_version", "outcome",
                 "reason_codes", "inputs", "inputs_sha256", "context", "requester", "trace_id", "decide_time"],
        records=[(str(a), 1, c, model.name, str(model.version), "band=HIGH probability=0.4321",
                  ["age_years", "is_active_member", "region"], inputs, "0" * 64, "operations/x", "ro-trainer", "",
                  now) for c, a in zip(ids, audits, strict=True)])).seconds
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("TRUNCATE churn_score, outbox_event, decision_audit")
        await connection.execute("VACUUM ANALYZE churn_score")
    finally:
        await connection.close()
    return seconds


async def run(bench: BenchRun) -> None:
    count = customer_count()
    jwt_secret = secrets.token_urlsafe(48)
    trainer = bearer(jwt_secret, Role.RISK_OFFICER, "ro-trainer")
    reviewer = bearer(jwt_secret, Role.RISK_OFFICER, "ro-reviewer")
    rows = synthetic(churn_rows(), count)
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_risk", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        plain_url = plain_database_url(database_url)
        await load_customers(plain_url, rows)
        bench.note(f"{count:,} customers in the read model")
        async with (bench.server("risk", [sys.executable, "-m", "crm_risk", "serve"], env=env, port=port,
                                 start_seconds=SERVER_START_SECONDS) as risk_address,
                    grpc.aio.insecure_channel(risk_address) as channel):
            stub = risk_service_pb2_grpc.RiskServiceStub(channel)
            started = time.perf_counter()
            model = await train_and_promote(stub, trainer, reviewer)
            bench.note(f"trained and promoted {model.name} (ROC AUC {model.metrics.roc_auc:.3f}) in "
                       f"{time.perf_counter() - started:.0f} s")

            artifact = await load_artifact(plain_url, model)
            matrix = feature_matrix(artifact, rows)
            predict = predict_seconds(artifact, matrix, with_drivers=False)
            bench.note(f"floor: predict_proba over {count:,} customers {predict:.2f} s")
            writes = await write_floor(plain_url, count, model)
            bench.note("floor: COPY " + ", ".join(f"{t} {s:.2f} s" for t, s in writes.items()))
            floor = predict + writes["churn_score"] + writes["outbox_event"]
            sample = min(count, DRIVERS_SAMPLE)
            with_drivers = predict_seconds(artifact, matrix[:sample], with_drivers=True) * count / sample
            bench.note(f"the same predictions with each customer's drivers: {with_drivers:.2f} s "
                       f"(timed over {sample:,} customers)")

            seconds, result = await batch(stub, trainer)
            bench.note(f"ScoreCustomers: {seconds:.2f} s for {result.scored_customers:,} customers")
            published = await count_events(plain_url)
            if result.scored_customers != count or published != count:
                raise AssertionError(f"{result.scored_customers} scored and {published} published, expected {count}")
            bench.emit("batch_seconds", seconds, "s", floor=floor, headline=True)
            bench.emit("batch_customers_per_s", count / seconds, "customers/s", floor=count / floor)
            bench.emit("batch_seconds_vs_floor_with_audits", seconds, "s", floor=floor + writes["decision_audit"])
            bench.emit("batch_seconds_vs_predictions_with_drivers", seconds, "s",
                       floor=with_drivers + sum(writes.values()))
            bench.emit("floor_predict_seconds", predict, "s")
            bench.emit("predict_with_drivers_seconds", with_drivers, "s", floor=predict)
            for table, taken in writes.items():
                bench.emit(f"floor_copy_{table}_seconds", taken, "s")
            bench.emit("customers", count, "customers")

            await single(bench, stub, trainer, count)


async def batch(stub: Any, metadata: Any) -> tuple[float, sc.ScoreCustomersResult]:
    started = time.perf_counter()
    response = await stub.ScoreCustomers(pb.ScoreCustomersRequest(request_id=str(uuid.uuid4())), metadata=metadata)
    operation = await finish(stub, response.operation, metadata, BATCH_TIMEOUT_SECONDS)
    elapsed = time.perf_counter() - started
    result = sc.ScoreCustomersResult()
    operation.response.Unpack(result)
    return elapsed, result


async def count_events(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(
            "SELECT count(*) FROM outbox_event WHERE resource_type = 'crm.risk.v1.ChurnScore'"))
    finally:
        await connection.close()


async def single(bench: BenchRun, stub: Any, metadata: Any, count: int) -> None:
    rng = random.Random(5)
    audit = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_RISK, justification="retention review")
    requests = [pb.ScoreCustomerRequest(customer=f"customers/{customer_id(rng.randrange(count))}", audit=audit)
                for _ in range(20_000)]
    # A customer whose every feature lowers their risk has no drivers; twenty customers have some.
    firsts = [(await stub.ScoreCustomer(r, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).score
              for r in requests[:20]]
    if not all(s.decision_audit for s in firsts) or not any(s.top_drivers for s in firsts):
        raise AssertionError("ScoreCustomer gave no drivers or no decision audit")

    async def score(index: int) -> object:
        return await stub.ScoreCustomer(requests[index % len(requests)], metadata=metadata,
                                        timeout=CALL_TIMEOUT_SECONDS)

    async with (bare_grpc_server(bench, env=dict(os.environ)) as bare_address,
                bare_grpc_call(bare_address, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as bare):
        floor, measured = await drive_alternating([bare, score], concurrency=SINGLE_CONCURRENCY,
                                                  seconds=bench.seconds, rounds=ROUNDS,
                                                  warmup_seconds=WARMUP_SECONDS)
    bench.note(f"bare gRPC     {floor.summary()}")
    bench.note(f"ScoreCustomer {measured.summary()}")
    c = SINGLE_CONCURRENCY
    bench.emit(f"single_p99_ms_c{c}", measured.p99_ms, "ms", floor=floor.p99_ms, headline=True)
    bench.emit(f"single_p50_ms_c{c}", measured.p50_ms, "ms", floor=floor.p50_ms)
    bench.emit(f"single_qps_c{c}", measured.throughput, "requests/s", floor=floor.throughput)
