"""RotateEncryptionKey through the real server on a database of its own: every sealed value moves
to the new key and still opens; the operation reports progress and the keys it retired."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import grpc
import pytest

from crm.common.v1 import audit_pb2, operation_pb2
from crm.profile.v1 import identity_pb2, privacy_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.crypto import KeyRing
from crmkit.testing import bearer, error_reason, field_violations

ADMIN = bearer(Role.ADMIN, subject="key-custodian")
FIELD = privacy_pb2.KEY_PURPOSE_FIELD_ENCRYPTION
SERVE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)


async def rotate(stub: Any, target: str, *, purpose: int = FIELD, request_id: str = "", metadata: Any = ADMIN) -> Any:
    response = await stub.RotateEncryptionKey(privacy_pb2.RotateEncryptionKeyRequest(
        purpose=purpose, target_key_id=target, request_id=request_id), metadata=metadata)
    return response.operation


async def sealed_values(runtime: Any, helpers: Any) -> list[tuple[bytes, str]]:
    """Every sealed value in the database with the context it was sealed for."""
    found: list[tuple[bytes, str]] = []
    fields = ("full_name", "id_number", "mobile_phone", "email", "address")
    columns = ", ".join(f"{f}_sealed" for f in fields)
    for row in await helpers.rows(runtime, f"SELECT customer_id, {columns} FROM customer"):  # noqa: S608
        found += [(bytes(v), f"customer:{row[0]}:{f}") for f, v in zip(fields, row[1:], strict=True) if v]
    for cid, attribute_id, sealed in await helpers.rows(
            runtime, "SELECT customer_id, attribute_id, value_sealed FROM customer_attribute"
                     " WHERE value_sealed IS NOT NULL"):
        found.append((bytes(sealed), f"customer:{cid}:attributes.{attribute_id}"))
    for cid, field, old, new in await helpers.rows(
            runtime, "SELECT customer_id, field, old_sealed, new_sealed FROM field_change"
                     " WHERE old_sealed IS NOT NULL OR new_sealed IS NOT NULL"):
        found += [(bytes(v), f"customer:{cid}:history:{field}") for v in (old, new) if v is not None]
    for survivor, undo in await helpers.rows(runtime, "SELECT survivor_id, undo::text FROM customer_merge"):
        for key in ("survivor_before", "survivor_after"):
            for column, encoded in (json.loads(undo)[key]["sealed"] or {}).items():
                if encoded:
                    found.append((base64.b64decode(encoded), f"customer:{survivor}:{column.removesuffix('_sealed')}"))
    return found


async def test_every_sealed_value_moves_to_the_new_key_and_still_opens(
        isolated, isolated_profile, isolated_seeder, helpers) -> None:
    _, runtime = isolated_profile
    survivor = await isolated_seeder.customer()
    source = await isolated_seeder.customer()
    await isolated.MergeCustomers(identity_pb2.MergeCustomersRequest(
        name=survivor.name, source_customer=source.name,
        audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT)), metadata=ADMIN)
    ring = helpers.ring(runtime)
    current = ring.active_key_id if not (await helpers.rows(
        runtime, "SELECT active_key_id FROM encryption_key_state")) else (await helpers.rows(
            runtime, "SELECT active_key_id FROM encryption_key_state"))[0][0]
    target = "k2" if current == "k1" else "k1"
    before = await sealed_values(runtime, helpers)
    stores = {context.split(":")[2].split(".")[0] for _, context in before}
    assert {"full_name", "attributes", "history"} <= stores
    assert any(KeyRing.key_id_of(v) != target for v, _ in before)
    clear_before = (await isolated.GetCustomer(pb.GetCustomerRequest(name=survivor.name, audit=SERVE),
                                               metadata=ADMIN)).customer

    started = await rotate(isolated, target, request_id=str(uuid.uuid4()))
    assert started.kind == "profile.rotate_key" and started.creator == "key-custodian"
    metadata = privacy_pb2.RotateEncryptionKeyMetadata()
    assert started.metadata.Unpack(metadata) and metadata.target_key_id == target
    assert list(metadata.previous_key_ids) == [current]
    done = await helpers.wait_for(isolated, started)
    assert done.state == operation_pb2.OPERATION_STATE_SUCCEEDED, done.error
    result = privacy_pb2.RotateEncryptionKeyResult()
    assert done.response.Unpack(result)
    assert result.rewritten_count >= len([v for v, _ in before if KeyRing.key_id_of(v) != target])
    assert list(result.retired_key_ids) == [current]
    assert done.progress.done >= result.rewritten_count > 0

    after = await sealed_values(runtime, helpers)
    assert len(after) == len(before)
    assert {KeyRing.key_id_of(v) for v, _ in after} == {target}
    assert all(helpers.opens(ring, value, context) for value, context in after)
    assert {k for (k,) in await helpers.rows(runtime, "SELECT DISTINCT key_id FROM customer")} <= {target, ""}
    clear_after = (await isolated.GetCustomer(pb.GetCustomerRequest(name=survivor.name, audit=SERVE),
                                              metadata=ADMIN)).customer
    assert clear_after.full_name == clear_before.full_name and clear_after.attributes == clear_before.attributes
    assert clear_after.etag == clear_before.etag  # re-encryption is not a change of the customer
    # New writes are sealed with the new key at once.
    fresh = await isolated_seeder.customer()
    keys = await helpers.rows(runtime, "SELECT key_id FROM customer WHERE customer_id = :c", c=fresh.customer_id)
    assert keys == [(target,)]


async def test_a_retried_request_returns_the_same_operation(isolated, isolated_profile, helpers) -> None:
    _, runtime = isolated_profile
    state = await helpers.rows(runtime, "SELECT active_key_id FROM encryption_key_state")
    target = state[0][0] if state else "k1"
    request_id = str(uuid.uuid4())
    first = await rotate(isolated, target, request_id=request_id)
    again = await rotate(isolated, target, request_id=request_id)
    assert again.name == first.name
    assert (await helpers.wait_for(isolated, first)).state == operation_pb2.OPERATION_STATE_SUCCEEDED


async def test_a_second_rotation_waits_for_the_first(isolated, isolated_profile, helpers) -> None:
    _, runtime = isolated_profile
    state = await helpers.rows(runtime, "SELECT active_key_id FROM encryption_key_state")
    target = state[0][0] if state else "k1"
    first = await rotate(isolated, target)
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await rotate(isolated, target)
    assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(busy.value) == "ROTATION_IN_PROGRESS"
    assert (await helpers.wait_for(isolated, first)).state == operation_pb2.OPERATION_STATE_SUCCEEDED


async def test_keys_not_in_the_ring_cannot_become_active(isolated, isolated_profile, helpers) -> None:
    _, runtime = isolated_profile
    count = "SELECT count(*) FROM operation WHERE kind = 'profile.rotate_key'"
    before = await helpers.rows(runtime, count)
    for purpose, target in ((FIELD, "k9"), (privacy_pb2.KEY_PURPOSE_BLIND_INDEX, "idx2")):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await rotate(isolated, target, purpose=purpose)
        assert missing.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(missing.value) == "KEY_NOT_LOADED"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await rotate(isolated, "no spaces!", purpose=0, request_id="x")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {"purpose", "target_key_id", "request_id"}
    assert await helpers.rows(runtime, count) == before


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.SERVICE, Role.ANALYST])
async def test_only_admins_rotate_keys(isolated, role) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await rotate(isolated, "k2", metadata=bearer(role))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
