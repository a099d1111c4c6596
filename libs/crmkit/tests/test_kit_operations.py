"""Long-running operations: the table, the proto, cancel and watch, and spawned worker processes."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from crm.common.v1 import operation_pb2
from crmkit import operations as ops
from crmkit.db import Database, metadata
from crmkit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from crmkit.pagination import PageTokens, clamp_page_size
from crmkit.testing import DatabaseFactory, eventually

kit = metadata()
operation = ops.operation_table(kit)
DOMAIN = "kit.crm"
State = operation_pb2.OperationState


@pytest.fixture(scope="module")
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await database_factory.create("ops"))
    async with database.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
def operations(db: Database) -> ops.Operations:
    return ops.Operations(db, operation, PageTokens(b"k" * 32), poll_seconds=0.02)


async def create(operations: ops.Operations, db: Database, *, kind: str = "kit.test", note: str = "x"
                 ) -> uuid.UUID:
    async with db.unit_of_work() as session:
        created = await operations.create(session, kind=kind, creator="tester",
                                          metadata=wrappers_pb2.StringValue(value=note))
    return ops.parse_name(created.name)


async def test_a_created_operation_reads_back_as_its_proto(operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db, note="upload 7")
    got = await operations.get(operation_id=operation_id)
    assert got.name == f"operations/{operation_id}"
    assert (got.kind, got.state, got.creator) == ("kit.test", State.OPERATION_STATE_PENDING, "tester")
    note = wrappers_pb2.StringValue()
    assert got.metadata.Unpack(note) and note.value == "upload 7"
    assert got.HasField("create_time") and not got.HasField("end_time")
    assert not got.HasField("response") and not got.HasField("error")


async def test_names_that_cannot_exist_are_not_found_and_malformed_ones_invalid() -> None:
    with pytest.raises(InvalidArgument):
        ops.parse_name("jobs/1")
    with pytest.raises(NotFound):
        ops.parse_name("operations/not-a-uuid")


async def test_unknown_operation_is_not_found(operations: ops.Operations) -> None:
    with pytest.raises(NotFound):
        await operations.get(operation_id=uuid.uuid4())
    with pytest.raises(NotFound):
        await operations.cancel(operation_id=uuid.uuid4())


async def test_list_is_newest_first_filtered_and_paged(operations: ops.Operations, db: Database) -> None:
    kind = f"kit.list-{uuid.uuid4().hex[:6]}"
    made = [await create(operations, db, kind=kind) for _ in range(5)]
    await operations.cancel(operation_id=made[1])
    seen: list[uuid.UUID] = []
    token = ""
    while True:
        page = await operations.list(page_size=2, page_token=token, kind=kind)
        seen.extend(ops.parse_name(o.name) for o in page.items)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(made))
    cancelled = await operations.list(page_size=0, page_token="", kind=kind,
                                      states=[State.OPERATION_STATE_CANCELLED])
    assert [ops.parse_name(o.name) for o in cancelled.items] == [made[1]]
    first = await operations.list(page_size=2, page_token="", kind=kind)
    with pytest.raises(InvalidArgument):  # a token is bound to its filter
        await operations.list(page_size=2, page_token=first.next_page_token, kind="kit.other")
    with pytest.raises(InvalidArgument):
        await operations.list(page_size=-1, page_token="")


async def test_cancel_pending_is_immediate_and_the_runner_then_never_starts_it(
        operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)
    cancelled = await operations.cancel(operation_id=operation_id)
    assert cancelled.state == State.OPERATION_STATE_CANCELLED and cancelled.HasField("end_time")
    assert not await operations.start(operation_id)
    again = await operations.cancel(operation_id=operation_id)  # a retried cancel answers the same
    assert again.state == State.OPERATION_STATE_CANCELLED


async def test_cancel_running_is_cooperative(operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)
    assert await operations.start(operation_id)
    flagged = await operations.cancel(operation_id=operation_id)
    assert flagged.state == State.OPERATION_STATE_RUNNING
    async with db.raw() as connection:
        worker = ops.WorkerOperation(connection, operation_id)
        assert (await worker.advance(done=10)).cancel_requested
        with pytest.raises(ops.OperationCancelled):
            await worker.raise_if_cancelled()
    assert await operations.finish(operation_id, state=ops.CANCELLED)
    assert (await operations.get(operation_id=operation_id)).state == State.OPERATION_STATE_CANCELLED


async def test_a_finished_operation_cannot_be_cancelled(operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)
    await operations.start(operation_id)
    await operations.finish(operation_id, state=ops.SUCCEEDED, response=wrappers_pb2.Int64Value(value=3))
    with pytest.raises(FailedPrecondition) as raised:
        await operations.cancel(operation_id=operation_id)
    assert raised.value.reason == "OPERATION_FINISHED"
    assert not await operations.finish(operation_id, state=ops.FAILED)  # final states are final


async def test_watch_sends_each_change_and_ends_with_the_final_state(operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)
    seen: list[operation_pb2.Operation] = []

    async def watch() -> None:
        async for update in operations.watch(operation_id=operation_id):
            seen.append(update)

    watcher = asyncio.create_task(watch())
    await eventually(lambda: seen, what="the watch's first update")
    await operations.start(operation_id)
    for step in range(3):
        await operations.progress(operation_id, done=10, total=30, stage=f"step {step}")
        await eventually(lambda: seen[-1].progress.stage == f"step {step}", what=f"step {step} watched")  # noqa: B023
    await operations.finish(operation_id, state=ops.SUCCEEDED, response=wrappers_pb2.Int64Value(value=30))
    await asyncio.wait_for(watcher, timeout=5)
    assert seen[0].state == State.OPERATION_STATE_PENDING
    dones = [s.progress.done for s in seen]
    assert dones == sorted(dones) and 30 in dones
    assert seen[-1].state == State.OPERATION_STATE_SUCCEEDED
    assert seen[-1].progress.total == 30 and seen[-1].HasField("end_time")
    result = wrappers_pb2.Int64Value()
    assert seen[-1].response.Unpack(result) and result.value == 30


async def test_complete_in_commits_or_rolls_back_with_the_work(operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)
    await operations.start(operation_id)
    async with db.raw() as connection:
        with pytest.raises(RuntimeError):
            async with connection.transaction():
                await ops.complete_in(connection, operation_id, wrappers_pb2.Int64Value(value=1))
                raise RuntimeError("the work failed after all")
        assert (await operations.get(operation_id=operation_id)).state == State.OPERATION_STATE_RUNNING
        async with connection.transaction():
            await ops.complete_in(connection, operation_id, wrappers_pb2.Int64Value(value=2))
        with pytest.raises(ops.OperationCancelled):  # no longer running: the caller must roll back
            async with connection.transaction():
                await ops.complete_in(connection, operation_id, wrappers_pb2.Int64Value(value=3))
    assert (await operations.get(operation_id=operation_id)).state == State.OPERATION_STATE_SUCCEEDED


async def test_operations_whose_heartbeat_stopped_are_failed(operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)
    await operations.start(operation_id)
    async with db.raw() as connection:
        await connection.execute(
            "UPDATE operation SET heartbeat_time = now() - interval '5 minutes' WHERE operation_id = $1", operation_id)
    assert await operations.fail_abandoned(older_than=timedelta(minutes=1), domain=DOMAIN) >= 1
    failed = await operations.get(operation_id=operation_id)
    assert failed.state == State.OPERATION_STATE_FAILED
    assert failed.error.code == code_pb2.UNAVAILABLE


# --- the runner and its spawned workers ------------------------------------------------------------


@pytest.fixture(scope="module")
async def runner(operations: ops.Operations) -> AsyncIterator[ops.OperationRunner]:
    running = ops.OperationRunner(operations=operations, service="kit-test", error_domain=DOMAIN, workers=1,
                                  heartbeat_seconds=0.2)
    running.start()
    yield running
    await running.close(grace=1)


async def wait_final(operations: ops.Operations, operation_id: uuid.UUID) -> operation_pb2.Operation:
    async with asyncio.timeout(60):
        async for update in operations.watch(operation_id=operation_id):
            last = update
    return last


async def test_workers_are_spawned_processes(runner: ops.OperationRunner) -> None:
    assert runner.start_method == "spawn"
    assert await runner.call(os.readlink, "/proc/self") != str(os.getpid())  # the worker's own pid
    assert await runner.call(asyncio.sleep, 0) is None  # coroutine functions run on the worker's own loop


async def test_a_coordinator_runs_work_in_a_worker_and_succeeds(
        runner: ops.OperationRunner, operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)

    async def coordinator(run: ops.RunningOperation) -> wrappers_pb2.Int64Value:
        await run.progress(total=2, stage="rooting")
        root = await run.call(math.isqrt, 1_000_000)
        await run.progress(done=2)
        return wrappers_pb2.Int64Value(value=root)

    runner.launch(operation_id, coordinator)
    final = await wait_final(operations, operation_id)
    assert final.state == State.OPERATION_STATE_SUCCEEDED
    assert (final.progress.done, final.progress.total, final.progress.stage) == (2, 2, "rooting")
    result = wrappers_pb2.Int64Value()
    final.response.Unpack(result)
    assert result.value == 1000


async def test_a_domain_error_in_a_worker_fails_the_operation_with_its_status(
        runner: ops.OperationRunner, operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)

    async def coordinator(run: ops.RunningOperation) -> None:
        await run.call(clamp_page_size, -1)  # raises InvalidArgument in the worker

    runner.launch(operation_id, coordinator)
    final = await wait_final(operations, operation_id)
    assert final.state == State.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in final.error.details if d.Is(bad.DESCRIPTOR))
    assert bad.field_violations[0].field == "page_size"


async def test_an_unexpected_error_fails_the_operation_as_internal(
        runner: ops.OperationRunner, operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)

    async def coordinator(run: ops.RunningOperation) -> None:
        await run.call(math.sqrt, -1)  # ValueError in the worker

    runner.launch(operation_id, coordinator)
    final = await wait_final(operations, operation_id)
    assert final.state == State.OPERATION_STATE_FAILED and final.error.code == code_pb2.INTERNAL
    assert "math domain" not in final.error.message  # nothing from inside leaks


async def test_a_dead_worker_fails_its_operation_and_the_pool_recovers(
        runner: ops.OperationRunner, operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)

    async def coordinator(run: ops.RunningOperation) -> None:
        await run.call(os._exit, 3)

    runner.launch(operation_id, coordinator)
    final = await wait_final(operations, operation_id)
    assert final.state == State.OPERATION_STATE_FAILED and final.error.code == code_pb2.INTERNAL
    assert await runner.call(math.isqrt, 49) == 7


async def test_cancel_stops_a_running_coordinator_at_its_next_check(
        runner: ops.OperationRunner, operations: ops.Operations, db: Database) -> None:
    operation_id = await create(operations, db)
    started = asyncio.Event()

    async def coordinator(run: ops.RunningOperation) -> None:
        started.set()
        while True:
            await run.progress(done=1)
            await asyncio.sleep(0.02)  # the work between checks, not a wait

    runner.launch(operation_id, coordinator)
    await asyncio.wait_for(started.wait(), 10)
    await operations.cancel(operation_id=operation_id)
    final = await wait_final(operations, operation_id)
    assert final.state == State.OPERATION_STATE_CANCELLED and final.HasField("end_time")


async def test_closing_the_runner_fails_what_is_still_running_as_unavailable(
        operations: ops.Operations, db: Database) -> None:
    runner = ops.OperationRunner(operations=operations, service="kit-test", error_domain=DOMAIN, workers=1)
    runner.start()
    operation_id = await create(operations, db)
    started = asyncio.Event()

    async def stubborn(run: ops.RunningOperation) -> None:
        started.set()
        await asyncio.sleep(3600)  # never looks at the cancel flag

    runner.launch(operation_id, stubborn)
    await asyncio.wait_for(started.wait(), 10)
    await runner.close(grace=0.2)
    final = await operations.get(operation_id=operation_id)
    assert final.state == State.OPERATION_STATE_FAILED
    assert final.error.code == code_pb2.UNAVAILABLE
    status = status_pb2.Status()
    status.CopyFrom(final.error)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "OPERATION_ABANDONED" and info.domain == DOMAIN


def test_relayed_failures_survive_pickling() -> None:
    import pickle

    failure = ops.OperationFailed.of(Unavailable("later", reason="BUSY"), domain=DOMAIN)
    copy = pickle.loads(pickle.dumps(failure))  # noqa: S301 - our own bytes
    status = status_pb2.Status.FromString(copy.status)
    assert status.code == code_pb2.UNAVAILABLE and status.message == "later"


async def test_list_names_a_bad_kind_or_state(db: Database) -> None:
    operations = ops.Operations(db, operation, PageTokens(b"k" * 32), kinds=("kit.test", "kit.other"))
    with pytest.raises(InvalidArgument) as raised:
        await operations.list(page_size=0, page_token="", kind="kit.unknown", states=[0, 9])
    described = {v.field: v.description for v in raised.value.violations}
    assert set(described) == {"kind", "states[0]", "states[1]"}
    assert described["states[1]"] == "9 is not a known OperationState value"
    assert (await operations.list(page_size=1, page_token="", kind="kit.other")).items == []


async def test_a_watch_ends_when_the_service_drains(db: Database) -> None:
    draining = asyncio.Event()
    operations = ops.Operations(db, operation, PageTokens(b"k" * 32), poll_seconds=0.02, draining=draining)
    operation_id = await create(operations, db)
    seen = []

    async def watch() -> None:
        async for update in operations.watch(operation_id=operation_id):
            seen.append(update)

    watcher = asyncio.create_task(watch())
    await eventually(lambda: seen, what="the watch's first update")
    draining.set()
    await asyncio.wait_for(watcher, timeout=2)
    assert [s.state for s in seen] == [State.OPERATION_STATE_PENDING]


async def test_a_page_of_large_results_is_cut_short_and_continues(operations: ops.Operations, db: Database) -> None:
    kind = f"kit.big-{uuid.uuid4().hex[:6]}"
    made = [await create(operations, db, kind=kind) for _ in range(3)]
    for operation_id in made:
        await operations.start(operation_id)
        await operations.finish(operation_id, state=ops.SUCCEEDED,
                                response=wrappers_pb2.BytesValue(value=b"x" * (ops.PAGE_BYTES // 2 + 1)))
    first = await operations.list(page_size=10, page_token="", kind=kind)
    assert len(first.items) == 1 and first.next_page_token
    rest = await operations.list(page_size=10, page_token=first.next_page_token, kind=kind)
    assert [ops.parse_name(o.name) for o in (*first.items, *rest.items)][:2] == list(reversed(made))[:2]


# A service process that has run one job in its worker pool, then waits: it writes the worker's pid.
SERVICE_WITH_A_WORKER = """
import asyncio, os, sys
from crmkit.operations import OperationRunner

async def main():
    runner = OperationRunner(operations=None, service="probe", error_domain="probe.crm", workers=1)
    worker = await runner.call(os.readlink, "/proc/self")
    with open(sys.argv[1], "w") as out:
        out.write(worker)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def poll(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_service_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    service = subprocess.Popen([sys.executable, "-c", SERVICE_WITH_A_WORKER, str(pid_file)],
                               stdout=subprocess.DEVNULL)
    worker = 0
    try:
        poll(lambda: pid_file.exists() and pid_file.read_text() != "", seconds=60, what="a worker started")
        worker = int(pid_file.read_text())
        assert running(worker)
        service.kill()  # SIGKILL: the service cleans nothing up
        poll(lambda: not running(worker), seconds=10, what="the worker died with its service")
    finally:
        service.kill()
        service.wait()
        if worker and running(worker):
            os.kill(worker, signal.SIGKILL)
