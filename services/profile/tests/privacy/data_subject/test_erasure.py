"""EraseCustomer through the real server on real PostgreSQL: nothing personal is left anywhere,
the anonymous aggregates are, and the erasure is evidenced, audited, announced and idempotent."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import grpc
import pytest

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import data_class_pb2, holding_pb2, identity_pb2, privacy_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, error_reason, field_violations, read_changes, tail_cursor

ADMIN = bearer(Role.ADMIN, subject="privacy-officer")
AUDITOR = bearer(Role.AUDITOR)
DSR = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_SUBJECT_REQUEST, justification="DSR-2026-0042")
D = data_class_pb2
ERASED, ANONYMISED, RESTRICTED = (privacy_pb2.ERASURE_OUTCOME_ERASED, privacy_pb2.ERASURE_OUTCOME_ANONYMISED,
                                  privacy_pb2.ERASURE_OUTCOME_RESTRICTED)


async def erase(profile: Any, name: str, *, metadata: Any = ADMIN, **fields: Any) -> privacy_pb2.ErasureReport:
    fields.setdefault("audit", DSR)
    response = await profile.EraseCustomer(privacy_pb2.EraseCustomerRequest(name=name, **fields), metadata=metadata)
    return response.report


async def personal_traces(runtime: Any, helpers: Any, customer_ids: list[str], clear_values: list[str],
                          attribute_ids: list[str]) -> list[str]:
    """Every place in the database still holding one of the clear values (as text or as bytes), or
    a sealed value that opens under one of the customers' contexts."""
    found = []
    tables = await helpers.rows(runtime, "SELECT c.relname FROM pg_class c JOIN pg_namespace n"
                                         " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                                         " AND c.relkind IN ('r', 'p')")
    patterns = [f"%{v}%" for v in clear_values] + [f"%{v.encode().hex()}%" for v in clear_values]
    for (table,) in tables:
        hits = await helpers.rows(runtime, f'SELECT t::text FROM "{table}" t WHERE t::text LIKE ANY(:p)',  # noqa: S608
                                  p=patterns)
        found += [f"{table}: {row[0][:200]}" for row in hits]
    ring = helpers.ring(runtime)
    fields = ["full_name", "id_number", "mobile_phone", "email", "address"]
    paths = ["full_name", "id_document.number", "mobile_phone", "email", "address"]
    paths += [f"attributes.{a}" for a in attribute_ids]
    contexts = [f"customer:{cid}:{f}" for cid in customer_ids
                for f in fields + [f"attributes.{a}" for a in attribute_ids] + [f"history:{p}" for p in paths]]
    columns = await helpers.rows(runtime, "SELECT table_name, column_name FROM information_schema.columns"
                                          " WHERE table_schema = 'public' AND data_type = 'bytea'")
    for table, column in columns:
        values = await helpers.rows(
            runtime, f'SELECT "{column}" FROM "{table}" WHERE octet_length("{column}") > 2'  # noqa: S608
                     f' AND get_byte("{column}", 0) = 1')
        for (sealed,) in values:
            if any(helpers.opens(ring, bytes(sealed), context) for context in contexts):
                found.append(f"{table}.{column}: a sealed value of the customer")
    merges = await helpers.rows(runtime, "SELECT undo::text FROM customer_merge WHERE survivor_id = ANY(:ids)"
                                         " OR source_id = ANY(:ids)", ids=customer_ids)
    for (undo,) in merges:
        for snapshot in (json.loads(undo).get(k) for k in ("survivor_before", "survivor_after")):
            for encoded in ((snapshot or {}).get("sealed") or {}).values():
                if encoded and any(helpers.opens(ring, base64.b64decode(encoded), c) for c in contexts):
                    found.append("customer_merge.undo: a sealed value of the customer")
    return found


async def test_erasure_leaves_no_personal_value_anywhere_but_keeps_the_aggregates(
        profile, profile_service, seeder, helpers) -> None:
    _, runtime = profile_service
    seeded = await seeder.customer()
    attributes = list(seeded.attribute_ids.values())
    before = await personal_traces(runtime, helpers, [seeded.customer_id], seeded.clear_values, attributes)
    assert before, "the seeded values are found before the erasure (the check itself works)"
    history_rows = (await helpers.rows(runtime, "SELECT count(*) FROM field_change WHERE customer_id = :c",
                                       c=seeded.customer_id))[0][0]

    report = await erase(profile, seeded.name)

    assert await personal_traces(runtime, helpers, [seeded.customer_id], seeded.clear_values, attributes) == []
    assert report.customer == seeded.name and report.HasField("erase_time")
    outcomes = {c.data_class: c.outcome for c in report.data_classes}
    assert outcomes == {D.DATA_CLASS_IDENTITY: ERASED, D.DATA_CLASS_CONTACT: ERASED, D.DATA_CLASS_DEMOGRAPHIC: ERASED,
                        D.DATA_CLASS_SPECIAL_CATEGORY: ERASED, D.DATA_CLASS_CONSENT: ERASED,
                        D.DATA_CLASS_FINANCIAL: ANONYMISED, D.DATA_CLASS_BEHAVIOUR: ANONYMISED,
                        D.DATA_CLASS_TRANSACTION: RESTRICTED, D.DATA_CLASS_AUDIT: RESTRICTED}
    assert all(c.record_count > 0 for c in report.data_classes)
    restricted = {c.data_class: c for c in report.data_classes if c.outcome == RESTRICTED}
    assert all(c.HasField("restricted_until") for c in restricted.values())
    # Anonymous aggregates stay: holdings with balances, events with types, channels, times, amounts.
    holdings = await helpers.rows(runtime, "SELECT balance_minor FROM holding WHERE customer_id = :c ORDER BY 1",
                                  c=seeded.customer_id)
    assert [h[0] for h in holdings] == [100_000, 200_000]
    events = await helpers.rows(runtime, "SELECT event_type, amount_minor, properties FROM customer_event"
                                         " WHERE customer_id = :c ORDER BY event_type", c=seeded.customer_id)
    assert [(e[0], e[1], e[2]) for e in events] == [(1, None, None), (6, 50_000, None)]
    # Who changed which field when stays in the history, without the values.
    changes = await helpers.rows(runtime, "SELECT count(*), count(*) FILTER (WHERE old_text IS NOT NULL AND field IN"
                                          " ('full_name', 'mobile_phone', 'email', 'occupation', 'birth_date'))"
                                          " FROM field_change WHERE customer_id = :c", c=seeded.customer_id)
    assert changes[0][0] > history_rows and changes[0][1] == 0
    # The record stays as a tombstone.
    tombstone = (await profile.GetCustomer(pb.GetCustomerRequest(name=seeded.name, audit=DSR), metadata=ADMIN)).customer
    assert tombstone.state == 3 and tombstone.full_name == "" and not tombstone.mobile_phone
    assert not tombstone.HasField("birth_date") and tombstone.HasField("closed_on")
    assert list(tombstone.attributes) == [seeded.attribute_ids["financial"]]  # an amount: kept, like balances
    assert not tombstone.external_ids and tombstone.occupation == ""
    # The link to the other customer is gone from both sides.
    assert (await helpers.rows(runtime, "SELECT count(*) FROM customer_relationship WHERE customer_id = :r"
                                        " OR related_customer_id = :r", r=seeded.related_id)) == [(0,)]


async def test_erasure_is_announced_audited_and_kept_as_evidence(profile, profile_service, seeder, helpers) -> None:
    _, runtime = profile_service
    seeded = await seeder.customer()
    feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    cursor = await tail_cursor(feed)
    report = await erase(profile, seeded.name)

    def announced(events: list[change_event_pb2.ChangeEvent]) -> bool:  # others publish meanwhile
        return any(e.resource_name == seeded.name and e.change_type == change_event_pb2.CHANGE_TYPE_DELETED
                   for e in events)

    events = await read_changes(feed(after_cursor=cursor), until=announced, seconds=20)
    deleted = [e for e in events
               if e.resource_name == seeded.name and e.change_type == change_event_pb2.CHANGE_TYPE_DELETED]
    assert [e.resource_type for e in deleted] == ["crm.profile.v1.Customer"] and not deleted[0].payload.value
    assert any(e.resource_type == "crm.profile.v1.Relationship"
               and e.change_type == change_event_pb2.CHANGE_TYPE_DELETED for e in events)
    # Earlier events about the customer keep their type but lose their payload.
    earlier = await helpers.rows(runtime, "SELECT count(*) FILTER (WHERE octet_length(payload) > 80), count(*)"
                                          " FROM outbox_event WHERE resource_name LIKE :p", p=f"{seeded.name}%")
    assert earlier[0][0] == 0 and earlier[0][1] > 3
    audited = await helpers.rows(runtime, "SELECT principal, purpose, justification FROM audit_record"
                                          " WHERE resource_name = :n AND action = 'customer.erase'", n=seeded.name)
    assert audited == [("privacy-officer", "DATA_SUBJECT_REQUEST", "DSR-2026-0042")]
    evidence = await helpers.rows(runtime, "SELECT erased_by, case_reference FROM customer_erasure"
                                           " WHERE customer_id = :c", c=seeded.customer_id)
    assert evidence == [("privacy-officer", "DSR-2026-0042")]
    # Erasing it again returns the same report and changes nothing; so does a retried request id.
    assert await erase(profile, seeded.name) == report


async def test_a_retried_request_returns_the_first_report(profile, seeder) -> None:
    seeded = await seeder.customer()
    request_id = str(uuid.uuid4())
    first = await erase(profile, seeded.name, request_id=request_id)
    assert await erase(profile, seeded.name, request_id=request_id) == first


async def test_validate_only_reports_without_changing_anything(profile, profile_service, seeder, helpers) -> None:
    _, runtime = profile_service
    seeded = await seeder.customer()
    snapshot = "SELECT t::text FROM customer t WHERE customer_id = :c"
    before = await helpers.rows(runtime, snapshot, c=seeded.customer_id)
    report = await erase(profile, seeded.name, validate_only=True)
    assert not report.HasField("erase_time") and len(report.data_classes) == 9
    assert await helpers.rows(runtime, snapshot, c=seeded.customer_id) == before
    assert (await helpers.rows(runtime, "SELECT count(*) FROM customer_erasure WHERE customer_id = :c",
                               c=seeded.customer_id)) == [(0,)]


async def test_customers_merged_into_the_erased_one_are_erased_with_it(
        profile, profile_service, seeder, helpers, new_customer) -> None:
    _, runtime = profile_service
    survivor = await seeder.customer()
    source = await seeder.customer()
    await profile.MergeCustomers(identity_pb2.MergeCustomersRequest(
        name=survivor.name, source_customer=source.name,
        audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT)), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as merged:
        await erase(profile, source.name)
    assert merged.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(merged.value) == "CUSTOMER_MERGED"
    await erase(profile, survivor.name)
    ids = [survivor.customer_id, source.customer_id]
    attributes = list(survivor.attribute_ids.values()) + list(source.attribute_ids.values())
    assert await personal_traces(runtime, helpers, ids, survivor.clear_values + source.clear_values, attributes) == []
    states = await helpers.rows(runtime, "SELECT state, merged_into FROM customer WHERE customer_id = ANY(:ids)",
                                ids=ids)
    assert sorted(states) == [(3, ""), (3, "")]


async def test_open_holdings_stale_etag_and_unknown_customers_are_refused_and_change_nothing(
        profile, profile_service, seeder, helpers) -> None:
    _, runtime = profile_service
    seeded = await seeder.customer(holdings_open=True)
    snapshot = "SELECT t::text FROM customer t WHERE customer_id = :c"
    before = await helpers.rows(runtime, snapshot, c=seeded.customer_id)
    with pytest.raises(grpc.aio.AioRpcError) as open_holdings:
        await erase(profile, seeded.name)
    assert open_holdings.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(open_holdings.value) == "CUSTOMER_HAS_OPEN_HOLDINGS"
    assert await helpers.rows(runtime, snapshot, c=seeded.customer_id) == before
    for holding_id in seeded.holding_ids:  # closed: erasable, but only with the current etag
        await profile.UpdateHolding(holding_pb2.UpdateHoldingRequest(
            holding=holding_pb2.Holding(name=f"{seeded.name}/holdings/{holding_id}",
                                        status=holding_pb2.HOLDING_STATUS_CLOSED,
                                        close_date={"year": 2024, "month": 5, "day": 1}),
            update_mask={"paths": ["status", "close_date"]}, audit=helpers.SERVE), metadata=helpers.SERVICE)
    before = await helpers.rows(runtime, snapshot, c=seeded.customer_id)
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await erase(profile, seeded.name, etag="999")
    assert stale.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await erase(profile, "customers/NO-SUCH-CUSTOMER")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert await helpers.rows(runtime, snapshot, c=seeded.customer_id) == before


@pytest.mark.parametrize(("fields", "violations"), [
    ({"name": "people/1"}, {"name"}),
    ({"audit": audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="x")},
     {"audit.purpose"}),
    ({"audit": audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_SUBJECT_REQUEST)}, {"audit.justification"}),
    ({"request_id": "not-a-uuid", "audit": audit_pb2.AuditContext()},
     {"request_id", "audit.purpose", "audit.justification"}),
])
async def test_bad_requests_name_every_bad_field_and_change_nothing(
        profile, profile_service, seeder, helpers, fields, violations) -> None:
    _, runtime = profile_service
    seeded = await seeder.customer()
    snapshot = "SELECT t::text FROM customer t WHERE customer_id = :c"
    before = await helpers.rows(runtime, snapshot, c=seeded.customer_id)
    fields.setdefault("name", seeded.name)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await profile.EraseCustomer(privacy_pb2.EraseCustomerRequest(**{"audit": DSR, **fields}), metadata=ADMIN)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == violations
    assert await helpers.rows(runtime, snapshot, c=seeded.customer_id) == before


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.RELATIONSHIP_MANAGER, Role.SERVICE, Role.CHANNEL_APP])
async def test_only_admins_erase(profile, seeder, role) -> None:
    seeded = await seeder.customer()
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await erase(profile, seeded.name, metadata=bearer(role))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
