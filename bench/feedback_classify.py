"""feedback-classify: ClassifyText throughput and latency, as a ratio to a bare gRPC call.

The feedback service runs as its own process (`python -m crm_feedback serve`) on a fresh,
migrated database, with `<repo>/../shared/data` (or `CRM_BENCH_DATA_DIR`) as its training
directory. A category classifier is trained through TrainTextClassifier on BANKING77 (77
intents, 10,003 training rows; the operation is followed to its end and its duration reported),
then, at concurrency 1 and 16, a platform service classifies real queries from the held-out part
for a bounded time, alternating in slices with the bare gRPC floor. Headline: ClassifyText qps at
concurrency 16 over the bare call's qps at concurrency 16.
"""

from __future__ import annotations

import base64
import csv
import os
import secrets
import sys
import time
import uuid

import grpc

from bench.environment import free_port, run_to_completion
from bench.floors import bare_grpc_call, bare_grpc_server
from bench.harness import BenchRun, LoadResult, drive_alternating
from bench.segment_clv import data_dir
from crm.common.v1 import operation_pb2
from crm.feedback.v1 import classification_pb2 as cl
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm.feedback.v1 import feedback_service_pb2_grpc
from crmkit.auth import Role, issue_token

CONCURRENCIES = (1, 16)
HEADLINE_CONCURRENCY = 16
WARMUP_SECONDS = 1.0
ROUNDS = 5
CALL_TIMEOUT_SECONDS = 10.0
TRAINING_FILE = "banking77_intents.csv"
# README: rows 10,004 on are BANKING77's original test split.
HOLDOUT_START_ROW = 10_004
# The service imports scikit-learn and SciPy: on a loaded 2-core machine it has taken over a minute.
START_SECONDS = 180.0


def service_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "CRM_ENV": "development",
        "CRM_HOST": "127.0.0.1",
        "CRM_JWT_SECRET": jwt_secret,
        "CRM_SHUTDOWN_GRACE_SECONDS": "2",
        "CRM_FEEDBACK_DATABASE_URL": database_url,
        "CRM_FEEDBACK_PORT": str(port),
        "CRM_FEEDBACK_ENCRYPTION_KEYS": f"bench1:{base64.b64encode(os.urandom(32)).decode()}",
        "CRM_FEEDBACK_ACTIVE_KEY_ID": "bench1",
        "CRM_FEEDBACK_TRAINING_DIR": str(data_dir()),
    }


async def run(bench: BenchRun) -> None:
    source = data_dir() / TRAINING_FILE
    if not source.exists():
        raise FileNotFoundError(f"{source} not found: feedback-classify trains on BANKING77 from the shared data")
    with source.open(newline="", encoding="utf-8") as handle:
        queries = [row["text"] for row in csv.DictReader(handle)][HOLDOUT_START_ROW - 1:]
    jwt_secret = secrets.token_urlsafe(48)
    admin = (("authorization", f"Bearer {issue_token(secret=jwt_secret, subject='bench-admin', roles=[Role.ADMIN])}"),)
    metadata = (("authorization",
                 f"Bearer {issue_token(secret=jwt_secret, subject='campaign', roles=[Role.SERVICE])}"),)
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_feedback", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        async with (bench.server("feedback", [sys.executable, "-m", "crm_feedback", "serve"], env=env,
                                 port=port, start_seconds=START_SECONDS) as feedback_address,
                    bare_grpc_server(bench, env=dict(os.environ)) as bare_address,
                    grpc.aio.insecure_channel(feedback_address) as channel):
            stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
            await train(bench, stub, admin)
            requests = [pb.ClassifyTextRequest(text=text) for text in queries]

            async def classify(index: int) -> object:
                return await stub.ClassifyText(requests[index % len(requests)], metadata=metadata,
                                               timeout=CALL_TIMEOUT_SECONDS)

            async with bare_grpc_call(bare_address, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as bare:
                for concurrency in CONCURRENCIES:
                    floor, measured = await drive_alternating(
                        [bare, classify], concurrency=concurrency, seconds=bench.seconds, rounds=ROUNDS,
                        warmup_seconds=WARMUP_SECONDS)
                    bench.note(f"bare gRPC    {floor.summary()}")
                    bench.note(f"ClassifyText {measured.summary()}")
                    report(bench, measured, floor, headline=concurrency == HEADLINE_CONCURRENCY)


async def train(bench: BenchRun, stub: feedback_service_pb2_grpc.FeedbackServiceStub,
                admin: tuple[tuple[str, str], ...]) -> None:
    bench.note(f"training a category classifier on {TRAINING_FILE}")
    started_at = time.perf_counter()
    started = await stub.TrainTextClassifier(pb.TrainTextClassifierRequest(
        spec=cl.TextClassifierTrainingSpec(
            target=cl.TEXT_CLASSIFIER_TARGET_CATEGORY, file=TRAINING_FILE, text_column="text", label_column="label",
            holdout_start_row=HOLDOUT_START_ROW, activate=True),
        request_id=str(uuid.uuid4())), metadata=admin)
    final = started.operation
    async for update in stub.WatchOperation(pb.WatchOperationRequest(name=final.name), metadata=admin):
        final = update.operation
    if final.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        raise AssertionError(f"training failed: {final.error.message}")
    model = cl.TextClassifier()
    final.response.Unpack(model)
    bench.emit("train_seconds", time.perf_counter() - started_at, "s")
    bench.emit("held_out_macro_f1", model.metrics.macro_f1, "ratio")
    bench.emit("held_out_accuracy", model.metrics.accuracy, "ratio")


def report(bench: BenchRun, measured: LoadResult, floor: LoadResult, *, headline: bool) -> None:
    c = measured.concurrency
    bench.emit(f"classify_qps_c{c}", measured.throughput, "requests/s", floor=floor.throughput, headline=headline)
    bench.emit(f"classify_p50_ms_c{c}", measured.p50_ms, "ms", floor=floor.p50_ms)
    bench.emit(f"classify_p99_ms_c{c}", measured.p99_ms, "ms", floor=floor.p99_ms)
