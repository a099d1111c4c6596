"""GetOperation, ListOperations, CancelOperation and WatchOperation through the in-process server."""

from __future__ import annotations

import uuid

import grpc
import pytest

from crm.common.v1 import operation_pb2
from crm.profile.v1 import import_pb2, operations_pb2
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

ADMIN = bearer(Role.ADMIN, subject="loader")
ANALYST = bearer(Role.ANALYST)
KIND = "profile.import"


async def finished_import(importer) -> operation_pb2.Operation:  # type: ignore[no-untyped-def]
    p = importer.prefix()
    data = importer.csv([["id", "name"], ["1", "Li Wei"]])
    operation, _ = await importer.run(data, {
        "customerId": {"column": "id", "prefix": p},
        "columns": [{"column": "name", "field": "full_name"},
                    {"column": "name", "field": "customer_type", "valueMap": {"Li Wei": "INDIVIDUAL"}}]})
    return operation


async def test_get_returns_the_operation_with_its_result(importer, profile) -> None:
    done = await finished_import(importer)
    got = (await profile.GetOperation(operations_pb2.GetOperationRequest(name=done.name), metadata=ANALYST)).operation
    assert got == done
    assert got.kind == KIND and got.creator == "loader" and got.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    result = import_pb2.ImportCustomersResult()
    assert got.response.Unpack(result) and result.inserted_count == 1
    assert got.HasField("end_time") and got.end_time.ToDatetime() >= got.create_time.ToDatetime()


async def test_watch_streams_progress_until_the_operation_ends(importer, profile) -> None:
    p = importer.prefix()
    rows = [["id", "name", "type"]] + [[str(n), f"Customer {n}", "individual"] for n in range(1500)]
    upload = await importer.upload(importer.csv(rows))
    started = await importer.start(upload.name, {
        "customerId": {"column": "id", "prefix": p},
        "columns": [{"column": "name", "field": "full_name"}, {"column": "type", "field": "customer_type"}]})
    seen = [update.operation async for update in profile.WatchOperation(
        operations_pb2.WatchOperationRequest(name=started.name), metadata=ANALYST, timeout=120)]
    assert seen[-1].state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert len({s.progress.stage for s in seen}) >= 2 or len(seen) >= 2
    dones = [s.progress.done for s in seen]
    assert dones == sorted(dones) and dones[-1] == 1500 == seen[-1].progress.total


async def test_list_is_newest_first_filtered_by_kind_and_state_and_paged(importer, profile) -> None:
    first = await finished_import(importer)
    second = await finished_import(importer)
    page = await profile.ListOperations(operations_pb2.ListOperationsRequest(
        page_size=1, kind=KIND, states=[operation_pb2.OPERATION_STATE_SUCCEEDED]), metadata=ANALYST)
    assert [o.name for o in page.operations] == [second.name] and page.next_page_token
    following = await profile.ListOperations(operations_pb2.ListOperationsRequest(
        page_size=1, kind=KIND, states=[operation_pb2.OPERATION_STATE_SUCCEEDED],
        page_token=page.next_page_token), metadata=ANALYST)
    assert [o.name for o in following.operations] == [first.name]
    failed = await profile.ListOperations(operations_pb2.ListOperationsRequest(
        kind="profile.rotate_key"), metadata=ANALYST)
    assert all(o.kind == "profile.rotate_key" for o in failed.operations)


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"kind": "profile.teleport"}, "kind"),
    ({"states": [42]}, "states[0]"),
    ({"page_size": -1}, "page_size"),
    ({"page_token": "forged"}, "page_token"),
])
async def test_list_rejects_bad_filters_naming_the_field(request_fields, field, profile) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.ListOperations(operations_pb2.ListOperationsRequest(**request_fields), metadata=ANALYST)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(raised.value)


async def test_unknown_and_malformed_names(profile) -> None:
    for call, request_type in ((profile.GetOperation, operations_pb2.GetOperationRequest),
                               (profile.CancelOperation, operations_pb2.CancelOperationRequest)):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request_type(name=f"operations/{uuid.uuid4()}"), metadata=ADMIN)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(raised.value) == "OPERATION_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request_type(name="jobs/7"), metadata=ADMIN)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "name" in field_violations(raised.value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in profile.WatchOperation(operations_pb2.WatchOperationRequest(name=f"operations/{uuid.uuid4()}"),
                                              metadata=ADMIN):
            pass
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_finished_operation_cannot_be_cancelled(importer, profile) -> None:
    done = await finished_import(importer)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.CancelOperation(operations_pb2.CancelOperationRequest(name=done.name), metadata=ADMIN)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(raised.value) == "OPERATION_FINISHED"
    assert (await profile.GetOperation(operations_pb2.GetOperationRequest(name=done.name), metadata=ADMIN)
            ).operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED


@pytest.mark.parametrize(("method", "role"), [
    ("GetOperation", Role.RELATIONSHIP_MANAGER), ("ListOperations", Role.MARKETER),
    ("CancelOperation", Role.ANALYST), ("WatchOperation", Role.CHANNEL_APP),
])
async def test_roles_outside_the_platform_are_refused(method, role, importer, profile) -> None:
    done = await finished_import(importer)
    request = {"GetOperation": operations_pb2.GetOperationRequest(name=done.name),
               "ListOperations": operations_pb2.ListOperationsRequest(),
               "CancelOperation": operations_pb2.CancelOperationRequest(name=done.name),
               "WatchOperation": operations_pb2.WatchOperationRequest(name=done.name)}[method]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        call = getattr(profile, method)(request, metadata=bearer(role))
        if method == "WatchOperation":
            async for _ in call:
                pass
        else:
            await call
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_migrated_operation_table_has_the_kit_factorys_shape(profile_service) -> None:
    from crm_profile import tables

    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        rows = await connection.fetch(
            "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'operation'")
        indexes = {r["indexname"] for r in await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'operation'")}
    migrated = {r["column_name"]: r["is_nullable"] == "YES" for r in rows}
    assert migrated == {c.name: bool(c.nullable) for c in tables.operation.columns}
    assert indexes == {"pk_operation"} | {i.name for i in tables.operation.indexes}
