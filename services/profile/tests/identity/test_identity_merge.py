"""MergeCustomers, UnmergeCustomers and ListMerges through the real server on real PostgreSQL:
survivorship and lineage, consent-aware merges, the MERGED pointer, and exact restoration."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, money_pb2, postal_address_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import consent_pb2 as c
from crm.profile.v1 import customer_pb2, history_pb2
from crm.profile.v1 import holding_pb2 as h
from crm.profile.v1 import identity_pb2 as i
from crm.profile.v1 import profile_service_pb2 as pb
from crm.profile.v1 import relationship_pb2 as r
from crmkit.auth import Role
from crmkit.testing import (
    bearer,
    change_feed,
    error_info,
    error_reason,
    field_violations,
    next_events,
    read_changes,
)

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="DQ-2026-7")
# A steward who also serves customers: sees personal data in clear (docs/privacy.md; auditors
# see it masked), so values can be compared.
ADMIN = bearer(Role.ADMIN, Role.CHANNEL_APP, subject="steward-1")
ANALYST = bearer(Role.ANALYST)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
SMS, EMAIL, WECHAT = c.CONTACT_CHANNEL_SMS, c.CONTACT_CHANNEL_EMAIL, c.CONTACT_CHANNEL_WECHAT
MARKETING = c.CONSENT_PURPOSE_MARKETING


def person(new_customer, **overrides):  # type: ignore[no-untyped-def]
    rng = random.Random()
    values = {
        "id_document": customer_pb2.IdDocument(type=customer_pb2.ID_DOCUMENT_TYPE_PASSPORT,
                                               number=f"E{rng.randint(10**7, 10**8 - 1)}", issuing_country="CN"),
        "mobile_phone": f"+86137{rng.randint(10**7, 10**8 - 1)}",
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "full_name": f"Merge Test {uuid.uuid4().hex[:6]}",
    }
    values.update(overrides)
    return new_customer(**values)


async def create(profile, new_customer, **overrides):  # type: ignore[no-untyped-def]
    sent = person(new_customer, **overrides)
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=RM)).customer


async def get(profile, name):  # type: ignore[no-untyped-def]
    return (await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=AUDIT), metadata=ADMIN)).customer


async def merge(profile, survivor, source, metadata=ADMIN, **fields):  # type: ignore[no-untyped-def]
    return await profile.MergeCustomers(i.MergeCustomersRequest(name=survivor, source_customer=source, audit=AUDIT,
                                                                **fields), metadata=metadata)


async def unmerge(profile, name, **fields):  # type: ignore[no-untyped-def]
    return await profile.UnmergeCustomers(i.UnmergeCustomersRequest(name=name, audit=AUDIT, **fields),
                                          metadata=ADMIN)


def stamp(days_ago: float) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(datetime.now(UTC) - timedelta(days=days_ago))
    return value


async def consent(profile, parent, channel, choice, days_ago):  # type: ignore[no-untyped-def]
    record = c.ConsentRecord(purpose=MARKETING, channel=channel, decision=choice, evidence=c.ConsentEvidence(
        source=c.CONSENT_SOURCE_BRANCH_FORM, effective_time=stamp(days_ago), text_version="MKT-1",
        recorded_by="emp-1"))
    await profile.RecordConsent(c.RecordConsentRequest(parent=parent, consents=[record], audit=AUDIT), metadata=RM)


async def consents(profile, parent):  # type: ignore[no-untyped-def]
    response = await profile.ListConsents(c.ListConsentsRequest(parent=parent, audit=AUDIT), metadata=ADMIN)
    return {s.channel: s.status for s in response.states}


async def history(profile, parent):  # type: ignore[no-untyped-def]
    response = await profile.ListConsentHistory(c.ListConsentHistoryRequest(parent=parent, audit=AUDIT),
                                                metadata=ADMIN)
    return list(response.consents)


async def preferences(profile, parent):  # type: ignore[no-untyped-def]
    response = await profile.GetContactPreferences(c.GetContactPreferencesRequest(
        name=f"{parent}/contactPreferences", audit=AUDIT), metadata=ADMIN)
    return response.contact_preferences


async def relationships(profile, parent):  # type: ignore[no-untyped-def]
    response = await profile.ListRelationships(r.ListRelationshipsRequest(parent=parent, audit=AUDIT), metadata=RM)
    return sorted((x.type, x.related_customer) for x in response.relationships)


def without_versions(customer: customer_pb2.Customer) -> customer_pb2.Customer:
    copy = customer_pb2.Customer()
    copy.CopyFrom(customer)
    for field in ("etag", "update_time"):
        copy.ClearField(field)
    return copy


async def test_merge_chooses_fields_with_lineage_and_leaves_a_merged_pointer(profile, new_customer) -> None:
    survivor = await create(profile, new_customer, email="", occupation="teacher",
                            onboarded_on=date_pb2.Date(year=2005, month=6, day=1))
    source = await create(profile, new_customer, occupation="engineer")
    merged = await merge(profile, survivor.name, source.name, survivorship_rules=[
        i.SurvivorshipRule(field="occupation", strategy=i.SURVIVORSHIP_STRATEGY_SURVIVOR)])
    assert merged.customer.name == survivor.name
    assert merged.customer.email == source.email  # a set value beats an empty one
    assert merged.customer.occupation == "teacher"
    assert merged.customer.mobile_phone == source.mobile_phone  # MOST_RECENT: the source changed later
    lineage = {x.field: x for x in merged.merge.field_lineage}
    assert lineage["email"].chosen_from == source.name and lineage["occupation"].chosen_from == survivor.name
    assert lineage["occupation"].strategy == i.SURVIVORSHIP_STRATEGY_SURVIVOR
    assert lineage["email"].source_system == "crm" and lineage["email"].value_time.seconds > 0
    assert merged.merge.name.startswith(f"{survivor.name}/merges/") and not merged.merge.review_required
    assert merged.merge.state == i.MERGE_STATE_ACTIVE and merged.merge.merged_by == "steward-1"
    gone = await get(profile, source.name)
    assert gone.state == customer_pb2.CUSTOMER_STATE_MERGED and gone.merged_into == survivor.name
    assert (await get(profile, survivor.name)).state == customer_pb2.CUSTOMER_STATE_ACTIVE


async def test_default_survivorship_keeps_the_first_onboarding_and_the_most_recently_confirmed_contact(
        profile, new_customer) -> None:
    survivor = await create(profile, new_customer, onboarded_on=date_pb2.Date(year=2019, month=3, day=1))
    source = await create(profile, new_customer, onboarded_on=date_pb2.Date(year=2023, month=6, day=1),
                          address=postal_address_pb2.PostalAddress(region_code="CN", locality="Shanghai",
                                                                   address_lines=["8 Century Avenue"]))
    # The survivor's customer confirms their phone and e-mail at the counter after the
    # duplicate was created; the duplicate's address is the more recent one.
    await profile.ConfirmFields(history_pb2.ConfirmFieldsRequest(
        name=survivor.name, fields=["mobile_phone", "email"], audit=AUDIT), metadata=RM)

    merged = await merge(profile, survivor.name, source.name)

    kept = await get(profile, survivor.name)
    assert kept.onboarded_on == date_pb2.Date(year=2019, month=3, day=1)
    assert (kept.mobile_phone, kept.email) == (survivor.mobile_phone, survivor.email)
    assert kept.address.locality == "Shanghai"
    lineage = {x.field: x for x in merged.merge.field_lineage}
    assert (lineage["onboarded_on"].chosen_from, lineage["onboarded_on"].strategy) == (
        survivor.name, i.SURVIVORSHIP_STRATEGY_EARLIEST)
    assert (lineage["mobile_phone"].chosen_from, lineage["mobile_phone"].strategy) == (
        survivor.name, i.SURVIVORSHIP_STRATEGY_MOST_RECENTLY_CONFIRMED)
    assert lineage["address"].chosen_from == source.name


async def test_a_merged_customer_refuses_other_calls_naming_its_survivor(profile, new_customer) -> None:
    survivor, source = await create(profile, new_customer), await create(profile, new_customer)
    await merge(profile, survivor.name, source.name)
    calls = [
        profile.UpdateCustomer(pb.UpdateCustomerRequest(
            customer=customer_pb2.Customer(name=source.name, occupation="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["occupation"]), audit=AUDIT), metadata=RM),
        profile.RecordConsent(c.RecordConsentRequest(parent=source.name, audit=AUDIT, consents=[c.ConsentRecord(
            purpose=MARKETING, channel=SMS, decision=c.CONSENT_DECISION_OPT_OUT, evidence=c.ConsentEvidence(
                source=c.CONSENT_SOURCE_BRANCH_FORM, effective_time=stamp(0), recorded_by="emp-1"))]), metadata=RM),
        profile.ListConsents(c.ListConsentsRequest(parent=source.name, audit=AUDIT), metadata=ADMIN),
        profile.GetContactPreferences(c.GetContactPreferencesRequest(name=f"{source.name}/contactPreferences",
                                                                     audit=AUDIT), metadata=ADMIN),
        profile.DeleteCustomer(pb.DeleteCustomerRequest(name=source.name, audit=AUDIT), metadata=ADMIN),
        merge(profile, survivor.name, source.name),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_info(error.value)
        assert info.reason == "CUSTOMER_MERGED" and info.metadata["survivor"] == survivor.name


async def test_merging_a_customer_into_itself_is_invalid_and_changes_nothing(profile, new_customer) -> None:
    only = await create(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await merge(profile, only.name, only.name)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error.value) == "MERGE_INTO_SELF" and "source_customer" in field_violations(error.value)
    assert (await get(profile, only.name)) == only


async def test_bad_merge_requests(profile, new_customer) -> None:
    person_a, person_b = await create(profile, new_customer), await create(profile, new_customer)
    company = await create(profile, new_customer, customer_type=customer_pb2.CUSTOMER_TYPE_ORGANISATION,
                           id_document=customer_pb2.IdDocument())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await merge(profile, person_a.name, company.name)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "CUSTOMER_TYPE_MISMATCH"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await merge(profile, person_a.name, person_b.name, etag="999")
    assert error.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await merge(profile, person_a.name, person_b.name, survivorship_rules=[
            i.SurvivorshipRule(field="risk_tolerance", strategy=i.SURVIVORSHIP_STRATEGY_SOURCE)])
    assert "survivorship_rules[0].field" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await merge(profile, person_a.name, "customers/NOPE-404")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await merge(profile, person_a.name, person_b.name, metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await get(profile, person_b.name)).state == customer_pb2.CUSTOMER_STATE_ACTIVE


async def test_validate_only_writes_nothing_and_a_retry_returns_the_first_merge(profile, new_customer) -> None:
    survivor, source = await create(profile, new_customer), await create(profile, new_customer)
    preview = await merge(profile, survivor.name, source.name, validate_only=True)
    assert preview.customer.mobile_phone == source.mobile_phone
    assert (await get(profile, source.name)).state == customer_pb2.CUSTOMER_STATE_ACTIVE
    assert (await get(profile, survivor.name)).mobile_phone == survivor.mobile_phone
    request_id = str(uuid.uuid4())
    first = await merge(profile, survivor.name, source.name, request_id=request_id)
    again = await merge(profile, survivor.name, source.name, request_id=request_id)
    assert again.merge == first.merge and again.customer.name == survivor.name


async def test_disagreeing_consents_keep_the_stricter_and_flag_review(profile, new_customer) -> None:
    survivor, source = await create(profile, new_customer), await create(profile, new_customer)
    # SMS: survivor opted out long ago, source opted in recently -> the stricter (out) must win.
    await consent(profile, survivor.name, SMS, c.CONSENT_DECISION_OPT_OUT, days_ago=30)
    await consent(profile, source.name, SMS, c.CONSENT_DECISION_OPT_IN, days_ago=1)
    # E-mail: survivor opted in, source never asked -> absence wins.
    await consent(profile, survivor.name, EMAIL, c.CONSENT_DECISION_OPT_IN, days_ago=5)
    # WeChat: both opted in -> no conflict.
    await consent(profile, survivor.name, WECHAT, c.CONSENT_DECISION_OPT_IN, days_ago=5)
    await consent(profile, source.name, WECHAT, c.CONSENT_DECISION_OPT_IN, days_ago=3)
    merged = (await merge(profile, survivor.name, source.name)).merge
    assert merged.review_required and list(merged.review_reasons) == [i.MERGE_REVIEW_REASON_CONSENT_CONFLICT]
    conflicts = {x.channel: x for x in merged.consent_conflicts}
    assert set(conflicts) == {SMS, EMAIL}
    assert (conflicts[SMS].survivor_status, conflicts[SMS].source_status, conflicts[SMS].result_status) == (
        c.CONSENT_STATUS_OPTED_OUT, c.CONSENT_STATUS_OPTED_IN, c.CONSENT_STATUS_OPTED_OUT)
    assert conflicts[EMAIL].source_status == c.CONSENT_STATUS_UNSPECIFIED
    assert await consents(profile, survivor.name) == {SMS: c.CONSENT_STATUS_OPTED_OUT,
                                                      EMAIL: c.CONSENT_STATUS_OPTED_OUT,
                                                      WECHAT: c.CONSENT_STATUS_OPTED_IN}
    ledger = await history(profile, survivor.name)
    assert sum(x.evidence.source == c.CONSENT_SOURCE_MERGE for x in ledger) == 2
    assert {x.origin_customer for x in ledger} == {"", source.name}  # the source's records, served here
    review = (await profile.ListMerges(i.ListMergesRequest(parent="customers/-", review_required=True),
                                       metadata=ANALYST)).merges
    assert merged.name in [m.name for m in review]


async def test_do_not_contact_and_risk_tolerance_disagreements_are_kept_strict(profile, new_customer) -> None:
    survivor = await create(profile, new_customer, risk_tolerance=customer_pb2.RISK_TOLERANCE_AGGRESSIVE)
    source = await create(profile, new_customer, risk_tolerance=customer_pb2.RISK_TOLERANCE_CONSERVATIVE)
    await profile.UpdateContactPreferences(c.UpdateContactPreferencesRequest(
        contact_preferences=c.ContactPreferences(name=f"{source.name}/contactPreferences", do_not_contact=True,
                                                 do_not_contact_reason=c.DO_NOT_CONTACT_REASON_DECEASED),
        update_mask=field_mask_pb2.FieldMask(paths=["do_not_contact", "do_not_contact_reason"]), audit=AUDIT),
        metadata=RM)
    merged = await merge(profile, survivor.name, source.name, default_strategy=i.SURVIVORSHIP_STRATEGY_SURVIVOR)
    assert set(merged.merge.review_reasons) == {i.MERGE_REVIEW_REASON_DO_NOT_CONTACT_CONFLICT,
                                                i.MERGE_REVIEW_REASON_RISK_TOLERANCE_CONFLICT}
    assert merged.customer.risk_tolerance == customer_pb2.RISK_TOLERANCE_CONSERVATIVE
    kept = await preferences(profile, survivor.name)
    assert kept.do_not_contact and kept.do_not_contact_reason == c.DO_NOT_CONTACT_REASON_DECEASED


async def test_unmerge_restores_both_customers_exactly(profile, new_customer) -> None:
    survivor = await create(profile, new_customer, email="", risk_tolerance=customer_pb2.RISK_TOLERANCE_BALANCED)
    source = await create(profile, new_customer, risk_tolerance=customer_pb2.RISK_TOLERANCE_CONSERVATIVE)
    neighbour = await create(profile, new_customer)
    await consent(profile, survivor.name, SMS, c.CONSENT_DECISION_OPT_IN, days_ago=2)
    await consent(profile, source.name, SMS, c.CONSENT_DECISION_OPT_OUT, days_ago=1)
    await consent(profile, source.name, EMAIL, c.CONSENT_DECISION_OPT_IN, days_ago=1)
    await profile.CreateRelationship(r.CreateRelationshipRequest(parent=source.name, audit=AUDIT, relationship=(
        r.Relationship(related_customer=neighbour.name, type=r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER,
                       source_system="branch-counter"))), metadata=RM)
    before = {name: (without_versions(await get(profile, name)), await consents(profile, name),
                     [x.record_id for x in await history(profile, name)], await relationships(profile, name),
                     (await preferences(profile, name)).do_not_contact)
              for name in (survivor.name, source.name, neighbour.name)}

    merged = await merge(profile, survivor.name, source.name)
    assert merged.customer.email == source.email and merged.merge.review_required
    assert await relationships(profile, survivor.name) == [(r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER, neighbour.name)]
    assert await relationships(profile, neighbour.name) == [(r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER, survivor.name)]

    undone = await unmerge(profile, source.name, etag=merged.customer.etag)
    assert undone.merge.state == i.MERGE_STATE_UNMERGED and undone.merge.unmerged_by == "steward-1"
    assert undone.restored.state == customer_pb2.CUSTOMER_STATE_ACTIVE and undone.restored.merged_into == ""
    after = {name: (without_versions(await get(profile, name)), await consents(profile, name),
                    [x.record_id for x in await history(profile, name)], await relationships(profile, name),
                    (await preferences(profile, name)).do_not_contact)
             for name in (survivor.name, source.name, neighbour.name)}
    assert after == before


async def test_unmerge_keeps_later_changes_and_copies_later_opt_outs(profile, new_customer) -> None:
    survivor = await create(profile, new_customer, email="")
    source = await create(profile, new_customer)
    merged = await merge(profile, survivor.name, source.name)
    await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=survivor.name, email="new@example.com"),
        update_mask=field_mask_pb2.FieldMask(paths=["email"]), audit=AUDIT), metadata=RM)
    await consent(profile, survivor.name, WECHAT, c.CONSENT_DECISION_OPT_OUT, days_ago=0)
    await consent(profile, survivor.name, SMS, c.CONSENT_DECISION_OPT_IN, days_ago=0)
    with pytest.raises(grpc.aio.AioRpcError) as error:  # the survivor changed since the merge
        await unmerge(profile, source.name, etag=merged.customer.etag)
    assert error.value.code() == grpc.StatusCode.ABORTED
    undone = await unmerge(profile, source.name)
    assert undone.survivor.email == "new@example.com"  # changed since the merge: kept
    assert undone.survivor.mobile_phone == survivor.mobile_phone  # restored
    assert await consents(profile, source.name) == {WECHAT: c.CONSENT_STATUS_OPTED_OUT}  # opt-outs only


async def test_unmerge_of_a_never_merged_customer_fails(profile, new_customer) -> None:
    only = await create(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await unmerge(profile, only.name)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(error.value) == "NOT_MERGED"
    assert (await get(profile, only.name)) == only
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await unmerge(profile, "customers/NOPE-404")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unmerge_retries_and_merge_chains(profile, new_customer) -> None:
    a, b, c_ = [await create(profile, new_customer) for _ in range(3)]
    await merge(profile, b.name, a.name)
    await merge(profile, c_.name, b.name)
    with pytest.raises(grpc.aio.AioRpcError) as error:  # b, a's survivor, is merged into c now
        await unmerge(profile, a.name)
    assert error_reason(error.value) == "SURVIVOR_MERGED"
    found = await profile.LookupCustomer(i.LookupCustomerRequest(email=a.email, audit=AUDIT), metadata=ADMIN)
    assert [x.name for x in found.customers] == [c_.name]  # a merged-away record resolves to its survivor
    request_id = str(uuid.uuid4())
    first = await unmerge(profile, b.name, request_id=request_id)
    again = await unmerge(profile, b.name, request_id=request_id)
    assert again.merge == first.merge
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await unmerge(profile, b.name)
    assert error_reason(error.value) == "NOT_MERGED"
    await unmerge(profile, a.name)
    assert (await get(profile, a.name)).state == customer_pb2.CUSTOMER_STATE_ACTIVE


async def test_a_candidate_is_resolved_by_its_merge(profile, new_customer, profile_service) -> None:
    import sqlalchemy as sa

    survivor, source = await create(profile, new_customer), await create(profile, new_customer)
    candidate_id = uuid.uuid4()
    _, runtime = profile_service
    async with runtime.db.engine.begin() as connection:  # as the matcher would have filed it
        await connection.execute(sa.text(
            "INSERT INTO match_candidate (match_candidate_id, customer_a, customer_b, match_rule_id, score, state)"
            " VALUES (:id, :a, :b, 'manual-test', 0.93, 1)"),
            {"id": candidate_id, "a": survivor.customer_id, "b": source.customer_id})
    other = await create(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await merge(profile, survivor.name, other.name, match_candidate=f"matchCandidates/{candidate_id}")
    assert error_reason(error.value) == "MATCH_CANDIDATE_MISMATCH"
    merged = await merge(profile, survivor.name, source.name, match_candidate=f"matchCandidates/{candidate_id}")
    assert merged.merge.match_candidate == f"matchCandidates/{candidate_id}"
    resolved = await profile.ListMatchCandidates(i.ListMatchCandidatesRequest(
        customer=source.name, state=i.MATCH_CANDIDATE_STATE_MERGED), metadata=ANALYST)
    assert [x.merge for x in resolved.match_candidates] == [merged.merge.name]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.DismissMatchCandidate(i.DismissMatchCandidateRequest(
            name=f"matchCandidates/{candidate_id}"), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_merges_are_listed_newest_first_and_go_out_on_the_feed(profile, new_customer, profile_service) -> None:
    survivor = await create(profile, new_customer)
    feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    after = await feed_tail(profile_service)
    names = []
    for _ in range(3):
        source = await create(profile, new_customer)
        names.append((await merge(profile, survivor.name, source.name)).merge.name)
    page = await profile.ListMerges(i.ListMergesRequest(parent=survivor.name, page_size=2), metadata=ANALYST)
    rest = await profile.ListMerges(i.ListMergesRequest(parent=survivor.name, page_size=2,
                                                        page_token=page.next_page_token), metadata=ANALYST)
    assert [m.name for m in [*page.merges, *rest.merges]] == names[::-1]
    events = await next_events(feed, after, 3, resource_types=["crm.profile.v1.Merge"])
    assert [e.resource_name for e in events] == names
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListMerges(i.ListMergesRequest(parent="customers/NOPE-404"), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListMerges(i.ListMergesRequest(parent="customers/-"), metadata=RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def feed_tail(profile_service) -> str:  # type: ignore[no-untyped-def]
    """The newest change-feed cursor, from the database: reading the feed up to its tail takes long
    once the session's other tests have filled it."""
    import sqlalchemy as sa

    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        return str((await connection.execute(sa.text("SELECT coalesce(max(cursor), 0) FROM outbox_event"))).scalar())


def holding(holding_id: str, *, closed_days_ago: int | None = None) -> h.Holding:
    today = datetime.now(UTC).date()
    opened = today - timedelta(days=400)
    value = h.Holding(holding_id=holding_id, product_code="SAV-CNY", product_type=h.PRODUCT_TYPE_SAVINGS_ACCOUNT,
                      currency="CNY", balance=money_pb2.Money(currency_code="CNY", units=1000),
                      open_date=date_pb2.Date(year=opened.year, month=opened.month, day=opened.day),
                      status=h.HOLDING_STATUS_ACTIVE, source_system="core-banking")
    if closed_days_ago is not None:
        closed = today - timedelta(days=closed_days_ago)
        value.status = h.HOLDING_STATUS_CLOSED
        value.close_date.CopyFrom(date_pb2.Date(year=closed.year, month=closed.month, day=closed.day))
    return value


async def holdings_of(profile, parent):  # type: ignore[no-untyped-def]
    response = await profile.ListHoldings(h.ListHoldingsRequest(parent=parent, audit=AUDIT), metadata=ADMIN)
    return {x.holding_id: x for x in response.holdings}


async def test_holdings_follow_the_survivor_and_go_back_on_unmerge(profile, new_customer, profile_service) -> None:
    survivor = await create(profile, new_customer)
    source = await create(profile, new_customer)
    shared_id, own_id = f"ACC{uuid.uuid4().hex[:8]}", f"ACC{uuid.uuid4().hex[:8]}"
    for parent, sent in ((survivor.name, holding(shared_id, closed_days_ago=3)),  # survivor's relationship ended
                         (source.name, holding(shared_id)), (source.name, holding(own_id))):
        await profile.CreateHolding(h.CreateHoldingRequest(parent=parent, holding=sent, audit=AUDIT), metadata=ADMIN)
    ended = (await get(profile, survivor.name)).closed_on
    assert ended.year
    after = await feed_tail(profile_service)

    merged = await merge(profile, survivor.name, source.name)
    # The source's own account moves; the account recorded under both keeps the survivor's copy.
    assert sorted(await holdings_of(profile, survivor.name)) == sorted([shared_id, own_id])
    assert (await holdings_of(profile, survivor.name))[shared_id].status == h.HOLDING_STATUS_CLOSED
    assert not merged.customer.HasField("closed_on")  # an open holding came with the source
    moves = await next_events(change_feed(profile, pb.WatchChangesRequest, ADMIN), after, 2,
                              resource_types=["crm.profile.v1.Holding"])
    assert [(e.resource_name, e.change_type) for e in moves] == [
        (f"{source.name}/holdings/{own_id}", change_event_pb2.CHANGE_TYPE_DELETED),
        (f"{survivor.name}/holdings/{own_id}", change_event_pb2.CHANGE_TYPE_CREATED)]
    with pytest.raises(grpc.aio.AioRpcError) as error:  # core banking must now name the survivor
        await profile.GetHolding(h.GetHoldingRequest(name=f"{source.name}/holdings/{own_id}", audit=AUDIT),
                                 metadata=ADMIN)
    assert error_info(error.value).metadata["survivor"] == survivor.name

    await unmerge(profile, source.name)
    assert sorted(await holdings_of(profile, survivor.name)) == [shared_id]
    assert sorted(await holdings_of(profile, source.name)) == sorted([shared_id, own_id])
    assert (await get(profile, survivor.name)).closed_on == ended


async def test_a_merge_marks_both_customers_features_for_recomputation(profile, new_customer,
                                                                        profile_service) -> None:
    survivor = await create(profile, new_customer)
    source = await create(profile, new_customer)
    await profile.CreateHolding(h.CreateHoldingRequest(parent=source.name, holding=holding("ACC-F1"), audit=AUDIT),
                                metadata=ADMIN)  # computes the source's features in its transaction
    after = await feed_tail(profile_service)
    await merge(profile, survivor.name, source.name)
    # The refresher takes the merge's mark: the merged-away customer's features are withdrawn and
    # the survivor's computed (it had none: it never had a holding or an event).
    ours = {f"{source.name}/features", f"{survivor.name}/features"}
    call = change_feed(profile, pb.WatchChangesRequest, ADMIN)(
        after_cursor=after, resource_types=["crm.profile.v1.CustomerFeatures"])
    changed = [e for e in await read_changes(
        call, until=lambda events: ours <= {e.resource_name for e in events}, seconds=10) if e.resource_name in ours]
    assert {(e.resource_name, e.change_type) for e in changed} == {
        (f"{source.name}/features", change_event_pb2.CHANGE_TYPE_DELETED),
        (f"{survivor.name}/features", change_event_pb2.CHANGE_TYPE_CREATED)}
