"""ExportCustomerData through the real server on real PostgreSQL: everything held about one
customer, in clear, in sections of at most 1000 items, audited as a data-subject request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from crm.common.v1 import audit_pb2
from crm.profile.v1 import data_class_pb2, event_pb2, privacy_pb2
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

ADMIN = bearer(Role.ADMIN, subject="privacy-officer")
DSR = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_SUBJECT_REQUEST, justification="DSR-2026-0077")
D = data_class_pb2


async def export(profile: Any, name: str, *, metadata: Any = ADMIN, **fields: Any
                 ) -> list[privacy_pb2.ExportCustomerDataResponse]:
    fields.setdefault("audit", DSR)
    call = profile.ExportCustomerData(privacy_pb2.ExportCustomerDataRequest(name=name, **fields), metadata=metadata)
    return [message async for message in call]


async def test_export_streams_everything_held_in_clear_and_is_audited(
        profile, profile_service, seeder, helpers) -> None:
    _, runtime = profile_service
    seeded = await seeder.customer()
    messages = await export(profile, seeded.name)
    first = messages[0]
    assert first.manifest.customer == seeded.name and first.manifest.export_id
    assert len(first.manifest.data_classes) == 10 and first.manifest.HasField("snapshot_time")
    assert first.customer.full_name == seeded.clear_values[0] and first.customer.mobile_phone == seeded.clear_values[3]
    assert not first.customer.masked_fields and len(first.customer.attributes) == 4
    assert first.contact_preferences.do_not_contact
    later = messages[1:]
    assert not any(m.HasField("manifest") or m.HasField("customer") for m in later)
    holdings = [h for m in later for h in m.holdings]
    assert sorted(h.holding_id for h in holdings) == sorted(seeded.holding_ids)
    assert len([r for m in later for r in m.consent_records]) == 1
    assert len([r for m in later for r in m.relationships]) == 1
    events = [e for m in later for e in m.events]
    assert sorted(e.event_id for e in events) == sorted(seeded.event_ids)
    assert {e.properties.get("device_owner") for e in events} >= {seeded.clear_values[11]}
    changes = [c for m in later for c in m.field_changes]
    assert any(c.field == "mobile_phone" and c.new_value == seeded.clear_values[3] and not c.masked for c in changes)
    access = [r for m in later for r in m.access_records]
    assert access and all(seeded.name in r.customers for r in access)
    audited = await helpers.rows(runtime, "SELECT principal, purpose, justification FROM audit_record"
                                          " WHERE resource_name = :n AND action = 'customer.export'", n=seeded.name)
    assert len(audited) == 1 and audited[0][:2] == ("privacy-officer", "DATA_SUBJECT_REQUEST")
    assert first.manifest.export_id in audited[0][2]


async def test_sections_hold_at_most_a_thousand_items(profile, seeder, helpers) -> None:
    seeded = await seeder.customer()
    start = datetime.now(UTC) - timedelta(days=1)
    visits = [event_pb2.CustomerEvent(
        event_id=f"{seeded.customer_id}-bulk-{n}", customer=seeded.name, event_type=event_pb2.EVENT_TYPE_PRODUCT_VIEW,
        channel=event_pb2.EVENT_CHANNEL_MOBILE_BANKING, occur_time=helpers.stamp(start + timedelta(seconds=n)),
        source_system="mobile-banking", product_code="TD-3Y-CNY") for n in range(1500)]
    for offset in range(0, 1500, 500):
        await helpers.ingest(profile, visits[offset:offset + 500])
    messages = await export(profile, seeded.name, data_classes=[D.DATA_CLASS_BEHAVIOUR])
    sizes = [len(m.events) for m in messages if m.events]
    assert sizes == [1000, 501]  # the seeded visit is a behaviour event too
    assert all(len(m.holdings) + len(m.events) + len(m.field_changes) + len(m.access_records) <= 1000
               for m in messages)


async def test_only_the_requested_classes_are_exported(profile, seeder) -> None:
    seeded = await seeder.customer()
    messages = await export(profile, seeded.name, data_classes=[D.DATA_CLASS_CONTACT, D.DATA_CLASS_CONTACT])
    first = messages[0]
    assert list(first.manifest.data_classes) == [D.DATA_CLASS_CONTACT]
    assert first.customer.mobile_phone and first.customer.email and first.customer.address.address_lines
    assert first.customer.full_name == "" and first.customer.occupation == "" and not first.customer.attributes
    assert not first.HasField("contact_preferences")
    later = messages[1:]
    assert not any(m.holdings or m.events or m.consent_records or m.relationships or m.access_records for m in later)
    assert {c.field for m in later for c in m.field_changes} == {"mobile_phone", "email", "address"}


async def test_an_erased_customer_has_nothing_to_export(profile, seeder) -> None:
    seeded = await seeder.customer()
    await profile.EraseCustomer(privacy_pb2.EraseCustomerRequest(name=seeded.name, audit=DSR), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as erased:
        await export(profile, seeded.name)
    assert erased.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(erased.value) == "CUSTOMER_ERASED"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await export(profile, "customers/NO-SUCH-ONE")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("fields", "violations"), [
    ({"name": "customer/1"}, {"name"}),
    ({"audit": audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_MARKETING)}, {"audit.purpose"}),
    ({"data_classes": [0, 42]}, {"data_classes[0]", "data_classes[1]"}),
    ({"name": "", "audit": audit_pb2.AuditContext(justification="x" * 201)},
     {"name", "audit.purpose", "audit.justification"}),
])
async def test_bad_requests_name_every_bad_field(profile, profile_service, seeder, helpers, fields, violations) -> None:
    _, runtime = profile_service
    seeded = await seeder.customer()
    fields.setdefault("name", seeded.name)
    count = "SELECT count(*) FROM audit_record WHERE action = 'customer.export' AND resource_name = :n"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await export(profile, **fields)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == violations
    assert await helpers.rows(runtime, count, n=seeded.name) == [(0,)]


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.RELATIONSHIP_MANAGER, Role.ANALYST])
async def test_only_admins_export(profile, seeder, role) -> None:
    seeded = await seeder.customer()
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await export(profile, seeded.name, metadata=bearer(role))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
