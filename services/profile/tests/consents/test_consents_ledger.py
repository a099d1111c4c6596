"""RecordConsent, ListConsents and ListConsentHistory through the real server on real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import audit_pb2
from crm.profile.v1 import consent_pb2 as c
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, error_reason, field_violations, next_events, row_counter

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
ADMIN = bearer(Role.ADMIN)
MARKETER = bearer(Role.MARKETER)
ANALYST = bearer(Role.ANALYST)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def decision(purpose: int = c.CONSENT_PURPOSE_MARKETING, channel: int = c.CONTACT_CHANNEL_SMS,
             choice: int = c.CONSENT_DECISION_OPT_IN, *, days_ago: float = 0, text_version: str = "MKT-CN-2025.03",
             expire_in_days: float | None = None) -> c.ConsentRecord:
    effective = datetime.now(UTC) - timedelta(days=days_ago)
    record = c.ConsentRecord(
        purpose=purpose, channel=channel, decision=choice,  # type: ignore[arg-type]
        evidence=c.ConsentEvidence(source=c.CONSENT_SOURCE_BRANCH_FORM, source_reference="FORM-2026-001",
                                   effective_time=stamp(effective), text_version=text_version,
                                   recorded_by="emp-4711"))
    if expire_in_days is not None:
        record.expire_time.CopyFrom(stamp(datetime.now(UTC) + timedelta(days=expire_in_days)))
    return record


async def customer(profile, new_customer, **overrides) -> str:  # type: ignore[no-untyped-def]
    created = await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer(**overrides)), metadata=RM)
    return created.customer.name


async def record(profile, parent, *records, request_id="", metadata=RM):  # type: ignore[no-untyped-def]
    return await profile.RecordConsent(c.RecordConsentRequest(parent=parent, consents=list(records),
                                                              request_id=request_id, audit=AUDIT), metadata=metadata)


async def states(profile, parent, metadata=MARKETER, **filters):  # type: ignore[no-untyped-def]
    response = await profile.ListConsents(c.ListConsentsRequest(parent=parent, audit=AUDIT, **filters),
                                          metadata=metadata)
    return {(s.purpose, s.channel): s for s in response.states}


async def test_a_recorded_opt_in_is_the_current_state_with_its_evidence(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    response = await record(profile, parent, decision(), decision(channel=c.CONTACT_CHANNEL_EMAIL,
                                                                  choice=c.CONSENT_DECISION_OPT_OUT))
    first = response.consents[0]
    assert first.name == f"{parent}/consentRecords/{first.record_id}"
    assert first.recorder == "rm-007" and first.evidence.recorded_by == "emp-4711"
    assert first.record_time.seconds > 0 and first.origin_customer == ""
    assert [s.status for s in response.states] == [c.CONSENT_STATUS_OPTED_IN, c.CONSENT_STATUS_OPTED_OUT]
    current = await states(profile, parent)
    assert current[(c.CONSENT_PURPOSE_MARKETING, c.CONTACT_CHANNEL_SMS)].record == first.name
    # A pair never recorded is not listed: it has no consent.
    assert (c.CONSENT_PURPOSE_SURVEYS, c.CONTACT_CHANNEL_SMS) not in current


async def test_every_change_of_mind_is_a_new_ledger_row(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    await record(profile, parent, decision(days_ago=3))
    await record(profile, parent, decision(choice=c.CONSENT_DECISION_OPT_OUT, days_ago=2, text_version=""))
    await record(profile, parent, decision(days_ago=1))
    history = await profile.ListConsentHistory(c.ListConsentHistoryRequest(parent=parent, audit=AUDIT), metadata=RM)
    assert [r.decision for r in history.consents] == [c.CONSENT_DECISION_OPT_IN, c.CONSENT_DECISION_OPT_OUT,
                                                      c.CONSENT_DECISION_OPT_IN]  # newest first
    assert (await states(profile, parent))[(1, 1)].status == c.CONSENT_STATUS_OPTED_IN


async def test_a_backdated_opt_in_is_kept_but_does_not_override_a_newer_opt_out(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    await record(profile, parent, decision(choice=c.CONSENT_DECISION_OPT_OUT, days_ago=1))
    response = await record(profile, parent, decision(days_ago=30))
    assert response.states[0].status == c.CONSENT_STATUS_OPTED_OUT
    history = await profile.ListConsentHistory(c.ListConsentHistoryRequest(parent=parent, audit=AUDIT), metadata=RM)
    assert len(history.consents) == 2


async def test_an_expired_opt_in_forbids_contact(profile, new_customer, profile_service) -> None:
    parent = await customer(profile, new_customer)
    await record(profile, parent, decision(days_ago=10, expire_in_days=-1))
    assert (await states(profile, parent))[(1, 1)].status == c.CONSENT_STATUS_EXPIRED


async def test_a_retry_with_the_same_request_id_appends_nothing(profile, new_customer, profile_service) -> None:
    parent = await customer(profile, new_customer)
    request_id, decided = str(uuid.uuid4()), decision()  # a retry resends the same body
    first = await record(profile, parent, decided, request_id=request_id)
    again = await record(profile, parent, decided, request_id=request_id)
    assert [r.record_id for r in again.consents] == [r.record_id for r in first.consents]
    history = await profile.ListConsentHistory(c.ListConsentHistoryRequest(parent=parent, audit=AUDIT), metadata=RM)
    assert len(history.consents) == 1


async def test_an_unknown_purpose_is_invalid_argument_naming_it_and_writes_nothing(
    profile, new_customer, profile_service,
) -> None:
    parent = await customer(profile, new_customer)
    count = row_counter(profile_service)
    before = await count("consent_record")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record(profile, parent, decision(channel=c.CONTACT_CHANNEL_EMAIL), decision(purpose=42))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "consents[1].purpose" in field_violations(error.value)
    assert error_reason(error.value) == "UNKNOWN_CONSENT_PURPOSE"
    assert await count("consent_record") == before


@pytest.mark.parametrize(("bad", "field"), [
    (decision(channel=0), "consents[0].channel"),
    (decision(channel=77), "consents[0].channel"),
    (decision(text_version=""), "consents[0].evidence.text_version"),
    (decision(text_version="has space"), "consents[0].evidence.text_version"),
    (decision(choice=c.CONSENT_DECISION_OPT_OUT, expire_in_days=5), "consents[0].expire_time"),
    (decision(days_ago=-1), "consents[0].evidence.effective_time"),
    (c.ConsentRecord(purpose=1, channel=1, decision=1), "consents[0].evidence"),
])
async def test_bad_decisions_are_named_and_write_nothing(profile, new_customer, profile_service, bad, field) -> None:
    parent = await customer(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record(profile, parent, bad)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    history = await profile.ListConsentHistory(c.ListConsentHistoryRequest(parent=parent, audit=AUDIT), metadata=RM)
    assert len(history.consents) == 0


async def test_a_merge_source_and_a_repeated_pair_are_refused(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    merge_sourced = decision()
    merge_sourced.evidence.source = c.CONSENT_SOURCE_MERGE
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record(profile, parent, merge_sourced, decision(), decision())
    assert {"consents[0].evidence.source", "consents[2]"} <= set(field_violations(error.value))


async def test_the_parent_must_exist_and_the_caller_must_be_allowed(profile, new_customer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record(profile, "customers/NOPE-404", decision())
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    parent = await customer(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record(profile, parent, decision(), metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListConsentHistory(c.ListConsentHistoryRequest(parent=parent, audit=AUDIT),
                                         metadata=bearer(Role.SERVICE))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    outside = await customer(profile, new_customer, relationship_manager_id="rm-other")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record(profile, outside, decision(), metadata=RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_lists_need_an_audit_purpose_and_page_with_filters(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    await record(profile, parent, *[decision(purpose=p, channel=ch) for p in (1, 2) for ch in (1, 2, 3)])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListConsents(c.ListConsentsRequest(parent=parent), metadata=MARKETER)
    assert "audit.purpose" in field_violations(error.value)
    seen, token = [], ""
    while True:
        page = await profile.ListConsents(c.ListConsentsRequest(parent=parent, audit=AUDIT, page_size=4,
                                                                page_token=token, channels=[1, 3]), metadata=MARKETER)
        seen += [(s.purpose, s.channel) for s in page.states]
        token = page.next_page_token
        if not token:
            break
    assert seen == [(1, 1), (1, 3), (2, 1), (2, 3)]
    history = await profile.ListConsentHistory(c.ListConsentHistoryRequest(
        parent=parent, audit=AUDIT, purposes=[2], page_size=2), metadata=RM)
    assert len(history.consents) == 2 and history.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListConsentHistory(c.ListConsentHistoryRequest(
            parent=parent, audit=AUDIT, purposes=[1], page_token=history.next_page_token), metadata=RM)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_each_record_goes_out_on_the_change_feed(profile, new_customer, profile_service) -> None:
    parent = await customer(profile, new_customer)
    feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    after = await feed_tail(profile_service)
    response = await record(profile, parent, decision(), decision(channel=c.CONTACT_CHANNEL_EMAIL))
    events = await next_events(feed, after, 2, resource_types=["crm.profile.v1.ConsentRecord"])
    assert [e.resource_name for e in events] == [r.name for r in response.consents]
    payload = c.ConsentRecord()
    events[0].payload.Unpack(payload)
    assert payload.decision == c.CONSENT_DECISION_OPT_IN and payload.evidence.text_version == "MKT-CN-2025.03"


async def test_the_ledger_refuses_edits_in_place(profile, new_customer, profile_service) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError

    parent = await customer(profile, new_customer)
    await record(profile, parent, decision())
    _, runtime = profile_service
    with pytest.raises(DBAPIError, match="ledger"):
        async with runtime.db.engine.begin() as connection:
            await connection.execute(sa.text("UPDATE consent_record SET decision = 2 WHERE customer_id = :c"),
                                     {"c": parent.removeprefix("customers/")})


async def feed_tail(profile_service) -> str:  # type: ignore[no-untyped-def]
    """The newest change-feed cursor, from the database: reading the feed up to its tail takes long
    once the session's other tests have filled it."""
    import sqlalchemy as sa

    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        return str((await connection.execute(sa.text("SELECT coalesce(max(cursor), 0) FROM outbox_event"))).scalar())
