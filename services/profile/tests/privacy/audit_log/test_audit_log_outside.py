"""The audit log as an auditor outside the platform sees it: records say which fields were
returned in clear or written and which reads were refused, and every `record_hash` recomputes
from ListAuditRecords alone by the recipe in audit_log.proto (implemented here from that
comment, without the kit's code), so an altered outcome is found."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

import grpc
import pytest

from crm.common.v1 import audit_pb2
from crm.profile.v1 import audit_log_pb2 as A
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason

AUDITOR = bearer(Role.AUDITOR, subject="auditor-1")
SERVE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="counter")
REVIEW = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_AUDIT, justification="AUD-1")
GENESIS = "0" * 64


# --- the contract's recipe, as an outsider writes it -------------------------------------------


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def _strings(values: Any) -> bytes:
    return len(values).to_bytes(4, "big") + b"".join(_string(v) for v in values)


def expected_hash(r: A.AuditRecord) -> str:
    moment = r.record_time.ToDatetime(tzinfo=UTC)
    purpose = audit_pb2.AccessPurpose.Name(r.purpose).removeprefix("ACCESS_PURPOSE_") if r.purpose else ""
    if r.hash_recipe == 2:
        outcome = A.AuditOutcome.Name(r.outcome).removeprefix("AUDIT_OUTCOME_")
        body = b"".join([
            _string(r.chain), _string(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")), _string(r.actor),
            _strings(r.actor_roles), _string(r.method), _string(r.operation), _string(r.resource), _string(purpose),
            _string(r.justification), _strings(r.fields), _string(outcome), _string(r.trace_id)])
    elif r.hash_recipe == 1 and not r.fields and r.outcome == A.AUDIT_OUTCOME_ALLOWED:
        items: list[object] = [moment.isoformat(), r.actor, r.operation, r.resource, purpose, r.justification,
                               r.trace_id]
        if r.actor_roles or r.method:
            items += [list(r.actor_roles), r.method]
        body = json.dumps(items, separators=(",", ":")).encode()
    else:
        return ""
    return hashlib.sha256(bytes.fromhex(r.previous_hash) + body).hexdigest()


def first_broken(records: list[A.AuditRecord]) -> int | None:
    """The sequence of the first record whose hash or link does not hold, or None."""
    tails: dict[str, str] = {}
    for r in records:
        # A chain's first record links to genesis, or to the anchor a retention purge kept.
        if r.chain in tails and r.previous_hash != tails[r.chain]:
            return r.sequence
        if r.record_hash != expected_hash(r):
            return r.sequence
        tails[r.chain] = r.record_hash
    return None


async def whole_log(profile: Any) -> list[A.AuditRecord]:
    records: list[A.AuditRecord] = []
    token = ""
    while True:
        page = await profile.ListAuditRecords(A.ListAuditRecordsRequest(page_size=1000, page_token=token,
                                                                        audit=REVIEW), metadata=AUDITOR)
        records.extend(page.audit_records)
        if not (token := page.next_page_token):
            return records


# --- the tests ----------------------------------------------------------------------------------


async def _read_by_everyone(profile: Any, new_customer: Any) -> str:
    """A customer created by its RM with name and phone, read by the channel app, the RM and an
    auditor, and refused to another RM."""
    sent = new_customer(relationship_manager_id="rm-book")
    sent.ClearField("email")
    sent.ClearField("id_document")
    sent.ClearField("address")
    sent.ClearField("birth_date")
    name = f"customers/{sent.customer_id}"
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent),
                                 metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-book"))
    for metadata in (bearer(Role.CHANNEL_APP, subject="app"), bearer(Role.RELATIONSHIP_MANAGER, subject="rm-book"),
                     AUDITOR):
        await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=SERVE), metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=SERVE),
                                  metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
    assert error_reason(refused.value) == "OUTSIDE_BOOK"
    return name


async def test_records_name_the_fields_in_clear_or_written_and_the_refusals(profile, new_customer) -> None:
    name = await _read_by_everyone(profile, new_customer)
    records = (await profile.ListAuditRecords(A.ListAuditRecordsRequest(customer=name, audit=REVIEW),
                                              metadata=AUDITOR)).audit_records
    assert [(r.actor, r.action, r.outcome) for r in records] == [
        ("rm-book", A.AUDIT_ACTION_CREATE, A.AUDIT_OUTCOME_ALLOWED),
        ("app", A.AUDIT_ACTION_READ, A.AUDIT_OUTCOME_ALLOWED),
        ("rm-book", A.AUDIT_ACTION_READ, A.AUDIT_OUTCOME_ALLOWED),
        ("auditor-1", A.AUDIT_ACTION_READ, A.AUDIT_OUTCOME_ALLOWED),
        ("rm-other", A.AUDIT_ACTION_READ, A.AUDIT_OUTCOME_DENIED),
    ]
    created, by_app, by_rm, by_auditor, refused = records
    assert {"full_name", "mobile_phone"} <= set(created.fields) and "email" not in created.fields
    assert list(by_app.fields) == list(by_rm.fields) == ["full_name", "mobile_phone"]
    assert list(by_auditor.fields) == []  # the auditor saw them masked
    assert list(refused.fields) == [] and refused.customers == [name]


async def test_an_outsider_recomputes_the_chain_and_finds_an_altered_outcome(
        isolated, isolated_profile, helpers, new_customer) -> None:
    _, runtime = isolated_profile
    name = await _read_by_everyone(isolated, new_customer)
    records = await whole_log(isolated)
    assert records and all(r.hash_recipe == 2 for r in records)
    assert first_broken(records) is None

    denied = next(r for r in records if r.customers == [name] and r.outcome == A.AUDIT_OUTCOME_DENIED)
    await _as_owner(runtime, helpers, "UPDATE audit_record SET outcome = 'ALLOWED' WHERE seq = :s",
                    s=denied.sequence)
    try:
        tampered = await whole_log(isolated)
        assert next(r for r in tampered if r.sequence == denied.sequence).outcome == A.AUDIT_OUTCOME_ALLOWED
        assert first_broken(tampered) == denied.sequence
        check = await isolated.VerifyAuditChain(A.VerifyAuditChainRequest(), metadata=AUDITOR)
        assert not check.valid and check.failure == A.AUDIT_CHAIN_FAILURE_HASH_MISMATCH
        assert check.first_invalid_sequence == denied.sequence
    finally:
        await _as_owner(runtime, helpers, "UPDATE audit_record SET outcome = 'DENIED' WHERE seq = :s",
                        s=denied.sequence)
    assert first_broken(await whole_log(isolated)) is None


async def _as_owner(runtime: Any, helpers: Any, sql: str, **params: Any) -> None:
    """What an intruder with the table owner's rights could do: lift the trigger and rewrite."""
    await helpers.execute(runtime, "ALTER TABLE audit_record DISABLE TRIGGER audit_record_append_only")
    try:
        await helpers.execute(runtime, sql, **params)
    finally:
        await helpers.execute(runtime, "ALTER TABLE audit_record ENABLE TRIGGER audit_record_append_only")
