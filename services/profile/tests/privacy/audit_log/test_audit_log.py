"""ListAuditRecords and VerifyAuditChain through the real server on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.type import interval_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import audit_log_pb2 as A
from crm.profile.v1 import customer_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, field_violations

AUDITOR = bearer(Role.AUDITOR, subject="auditor-1")
ADMIN = bearer(Role.ADMIN, subject="admin-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
REVIEW = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_AUDIT, justification="AUD-2026-Q4")
SERVE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="counter")


async def listed(profile: Any, *, metadata: Any = AUDITOR, **fields: Any) -> A.ListAuditRecordsResponse:
    fields.setdefault("audit", REVIEW)
    return await profile.ListAuditRecords(A.ListAuditRecordsRequest(**fields), metadata=metadata)


async def verify(profile: Any, **fields: Any) -> A.VerifyAuditChainResponse:
    return await profile.VerifyAuditChain(A.VerifyAuditChainRequest(**fields), metadata=AUDITOR)


async def accessed_customer(profile: Any, new_customer: Any) -> customer_pb2.Customer:
    """A customer created by the RM, read twice and updated: four audit records."""
    created = (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer()), metadata=RM)).customer
    for _ in range(2):
        await profile.GetCustomer(pb.GetCustomerRequest(name=created.name, audit=SERVE), metadata=RM)
    created.occupation = "Engineer"
    await profile.UpdateCustomer(pb.UpdateCustomerRequest(customer=created, update_mask={"paths": ["occupation"]},
                                                          audit=SERVE), metadata=RM)
    return created


async def test_records_of_a_customer_in_sequence_order_with_their_hashes(profile, new_customer) -> None:
    customer = await accessed_customer(profile, new_customer)
    records = (await listed(profile, customer=customer.name)).audit_records
    assert [r.action for r in records] == [A.AUDIT_ACTION_CREATE, A.AUDIT_ACTION_READ, A.AUDIT_ACTION_READ,
                                           A.AUDIT_ACTION_UPDATE]
    sequences = [r.sequence for r in records]
    assert sequences == sorted(sequences) and all(r.name == f"auditRecords/{r.sequence}" for r in records)
    assert all(r.customers == [customer.name] and r.actor == "rm-007" for r in records)
    assert all(len(r.record_hash) == 64 and len(r.previous_hash) == 64 for r in records)
    assert records[1].purpose == audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE and records[1].justification == "counter"
    assert all(r.outcome == A.AUDIT_OUTCOME_ALLOWED and r.HasField("record_time") for r in records)
    # Who with which roles, through which RPC: taken from the call the record was made in.
    service = "/crm.profile.v1.ProfileService/"
    assert [r.method for r in records] == [service + "CreateCustomer", service + "GetCustomer",
                                           service + "GetCustomer", service + "UpdateCustomer"]
    assert all(list(r.actor_roles) == ["relationship_manager"] for r in records)


async def test_filters_and_pages(profile, new_customer) -> None:
    customer = await accessed_customer(profile, new_customer)
    reads = (await listed(profile, customer=customer.name, actions=[A.AUDIT_ACTION_READ])).audit_records
    assert len(reads) == 2
    assert (await listed(profile, customer=customer.name, actor="someone-else")).audit_records == []
    by_purpose = (await listed(profile, customer=customer.name,
                               purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)).audit_records
    assert len(by_purpose) == 3  # the create is recorded as data management
    future = interval_pb2.Interval()
    future.start_time.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    assert (await listed(profile, customer=customer.name, record_interval=future)).audit_records == []
    # (each list by customer is itself a record about the customer: filter on the RM's own)
    first = await listed(profile, customer=customer.name, actor="rm-007", page_size=3)
    assert len(first.audit_records) == 3 and first.next_page_token
    rest = await listed(profile, customer=customer.name, actor="rm-007", page_size=3,
                        page_token=first.next_page_token)
    assert len(rest.audit_records) == 1 and not rest.next_page_token
    assert rest.audit_records[0].sequence > first.audit_records[-1].sequence
    with pytest.raises(grpc.aio.AioRpcError) as other_filter:
        await listed(profile, customer=customer.name, page_token=first.next_page_token)
    assert set(field_violations(other_filter.value)) == {"page_token"}


async def test_reading_the_log_is_recorded_in_it(profile, new_customer) -> None:
    customer = await accessed_customer(profile, new_customer)
    await listed(profile, customer=customer.name)
    records = (await listed(profile, customer=customer.name, actor="auditor-1")).audit_records
    assert records and records[0].purpose == audit_pb2.ACCESS_PURPOSE_AUDIT
    assert records[0].justification == "AUD-2026-Q4" and records[0].customers == [customer.name]


async def test_bad_list_requests_name_every_bad_field(profile) -> None:
    backwards = interval_pb2.Interval()
    backwards.start_time.FromDatetime(datetime.now(UTC))
    backwards.end_time.FromDatetime(datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await listed(profile, customer="people/1", actions=[0], record_interval=backwards, purpose=99,
                     audit=audit_pb2.AuditContext())
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {"customer", "actions[0]", "record_interval.end_time", "purpose",
                                                "audit.purpose"}
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await listed(profile, page_size=-1)
    assert set(field_violations(negative.value)) == {"page_size"}


@pytest.mark.parametrize("role", [Role.RELATIONSHIP_MANAGER, Role.ANALYST, Role.MARKETER, Role.SERVICE])
async def test_only_auditors_and_admins_read_the_log(profile, role) -> None:
    for call in (lambda: listed(profile, metadata=bearer(role)),
                 lambda: profile.VerifyAuditChain(A.VerifyAuditChainRequest(), metadata=bearer(role))):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await call()
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await listed(profile, metadata=ADMIN, page_size=1)).audit_records


async def test_the_chain_verifies_and_an_anchor_saved_outside_matches(profile, new_customer) -> None:
    await accessed_customer(profile, new_customer)
    whole = await verify(profile)
    assert whole.valid and whole.failure == A.AUDIT_CHAIN_FAILURE_UNSPECIFIED
    assert whole.end_sequence >= whole.start_sequence >= 1 and len(whole.end_hash) == 64
    anchored = await verify(profile, end_sequence=whole.end_sequence, expected_end_hash=whole.end_hash)
    assert anchored.valid and anchored.end_hash == whole.end_hash
    wrong = await verify(profile, end_sequence=whole.end_sequence, expected_end_hash="0" * 64)
    assert not wrong.valid and wrong.failure == A.AUDIT_CHAIN_FAILURE_ANCHOR_MISMATCH
    part = await verify(profile, start_sequence=whole.end_sequence, end_sequence=whole.end_sequence)
    assert part.valid and (part.start_sequence, part.end_sequence) == (whole.end_sequence, whole.end_sequence)


@pytest.mark.parametrize(("fields", "violations"), [
    ({"start_sequence": 10, "end_sequence": 5}, {"end_sequence"}),
    ({"start_sequence": 1, "end_sequence": 10_000_001}, {"end_sequence"}),
    ({"start_sequence": -1}, {"start_sequence"}),
    ({"expected_end_hash": "ABC"}, {"expected_end_hash"}),
])
async def test_bad_ranges_are_invalid_argument(profile, fields, violations) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await verify(profile, **fields)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(bad.value)) == violations


async def test_a_start_beyond_the_newest_entry_is_out_of_range(profile) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as beyond:
        await verify(profile, start_sequence=10**12)
    assert beyond.value.code() == grpc.StatusCode.OUT_OF_RANGE


# --- tampering, on a database of its own -----------------------------------------------------------


async def _changes_chain(runtime: Any, helpers: Any) -> list[Any]:
    return await helpers.rows(runtime, "SELECT seq, justification FROM audit_record WHERE chain_id = 'changes'"
                                       " ORDER BY seq")


async def _as_owner(runtime: Any, helpers: Any, sql: str, **params: Any) -> None:
    """What an intruder with the table owner's rights could do: lift the trigger and rewrite."""
    await helpers.execute(runtime, "ALTER TABLE audit_record DISABLE TRIGGER audit_record_append_only")
    try:
        await helpers.execute(runtime, sql, **params)
    finally:
        await helpers.execute(runtime, "ALTER TABLE audit_record ENABLE TRIGGER audit_record_append_only")


async def test_an_edited_removed_or_cut_off_record_is_detected(isolated, isolated_profile, helpers,
                                                               new_customer) -> None:
    _, runtime = isolated_profile
    for _ in range(3):
        await accessed_customer(isolated, new_customer)
    chain = await _changes_chain(runtime, helpers)
    assert len(chain) >= 6
    assert (await verify(isolated)).valid
    victim_seq, original = chain[2]

    await _as_owner(runtime, helpers, "UPDATE audit_record SET justification = 'nothing to see' WHERE seq = :s",
                    s=victim_seq)
    try:
        edited = await verify(isolated)
        assert not edited.valid and edited.failure == A.AUDIT_CHAIN_FAILURE_HASH_MISMATCH
        assert edited.first_invalid_sequence == victim_seq
    finally:
        await _as_owner(runtime, helpers, "UPDATE audit_record SET justification = :j WHERE seq = :s",
                        j=original, s=victim_seq)
    assert (await verify(isolated)).valid

    saved = await helpers.rows(runtime, "SELECT * FROM audit_record WHERE seq = :s", s=victim_seq)
    columns = ("seq", "chain_id", "recorded_at", "principal", "action", "resource_name", "purpose", "justification",
               "trace_id", "prev_hash", "hash", "actor_roles", "method", "fields", "outcome",
               "hash_recipe")  # the table's order (`SELECT *`)
    restore = (f"INSERT INTO audit_record ({', '.join(columns)}) OVERRIDING SYSTEM VALUE"  # noqa: S608
               f" VALUES ({', '.join(':' + c for c in columns)})")
    await _as_owner(runtime, helpers, "DELETE FROM audit_record WHERE seq = :s", s=victim_seq)
    try:
        removed = await verify(isolated)
        assert not removed.valid and removed.failure == A.AUDIT_CHAIN_FAILURE_LINK_MISMATCH
        assert removed.first_invalid_sequence == chain[3][0]  # the next record of the same chain
    finally:
        await _as_owner(runtime, helpers, restore, **dict(zip(columns, saved[0], strict=True)))
    whole = await verify(isolated)
    assert whole.valid

    newest = await helpers.rows(runtime, "SELECT * FROM audit_record WHERE seq = :s", s=whole.end_sequence)
    await _as_owner(runtime, helpers, "DELETE FROM audit_record WHERE seq = :s", s=whole.end_sequence)
    try:
        assert (await verify(isolated)).valid  # a chain cannot see its own tail cut off ...
        cut = await verify(isolated, end_sequence=whole.end_sequence, expected_end_hash=whole.end_hash)
        assert not cut.valid and cut.failure == A.AUDIT_CHAIN_FAILURE_ANCHOR_MISMATCH  # ... an anchor can
    finally:
        await _as_owner(runtime, helpers, restore, **dict(zip(columns, newest[0], strict=True)))
    assert (await verify(isolated, end_sequence=whole.end_sequence, expected_end_hash=whole.end_hash)).valid
