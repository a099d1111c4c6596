"""Retention policies and the purge through the real server. Policies are changed and purges run
on a database of their own (`isolated`); the shared service only sees requests that fail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from crm.common.v1 import change_event_pb2, operation_pb2
from crm.profile.v1 import audit_log_pb2, data_class_pb2, event_pb2, retention_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile.privacy.retention.rules import DEFAULT_POLICIES
from crmkit.audit import GENESIS_HASH, AuditEntry, record_hash
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, error_reason, field_violations, read_changes, tail_cursor

ADMIN = bearer(Role.ADMIN, subject="dpo")
AUDITOR = bearer(Role.AUDITOR)
D = data_class_pb2
R = retention_pb2
DAY = 24 * 3600


def days(n: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=n * DAY)


async def policies(stub: Any, **fields: Any) -> list[R.RetentionPolicy]:
    return list((await stub.ListRetentionPolicies(R.ListRetentionPoliciesRequest(**fields),
                                                  metadata=AUDITOR)).retention_policies)


async def update(stub: Any, slug: str, paths: list[str], *, metadata: Any = ADMIN, **values: Any) -> R.RetentionPolicy:
    policy = R.RetentionPolicy(name=f"retentionPolicies/{slug}", **values)
    response = await stub.UpdateRetentionPolicy(R.UpdateRetentionPolicyRequest(
        retention_policy=policy, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=metadata)
    return response.retention_policy


async def purge(stub: Any, helpers: Any, *classes: int, validate_only: bool = False) -> R.RetentionPurgeResult:
    started = (await stub.RunRetentionPurge(R.RunRetentionPurgeRequest(
        data_classes=list(classes), validate_only=validate_only), metadata=ADMIN)).operation
    assert started.kind == "profile.retention_purge"
    done = await helpers.wait_for(stub, started)
    assert done.state == operation_pb2.OPERATION_STATE_SUCCEEDED, done.error
    result = R.RetentionPurgeResult()
    assert done.response.Unpack(result)
    return result


def by_class(result: R.RetentionPurgeResult) -> dict[int, R.RetentionPurgeClassResult]:
    return {c.data_class: c for c in result.classes}


async def test_one_policy_per_class_with_the_documented_defaults(isolated, profile) -> None:
    listed = await policies(isolated)
    assert [p.data_class for p in listed] == [int(c) for c in DEFAULT_POLICIES]
    assert [p.name for p in listed][:2] == ["retentionPolicies/identity", "retentionPolicies/contact"]
    assert "retentionPolicies/special-category" in [p.name for p in listed]
    for policy in listed:
        default = DEFAULT_POLICIES[policy.data_class]  # type: ignore[index]
        if policy.etag == "1":  # not changed by another test yet
            assert policy.retention_period.ToTimedelta() == default.retention
            assert (policy.anchor, policy.action) == (default.anchor, default.action)
            assert policy.overrides_erasure == default.overrides_erasure and policy.legal_basis
    # The shared service has the default legal floors; the isolated one none.
    shared = {p.data_class: p for p in await policies(profile)}
    assert shared[D.DATA_CLASS_TRANSACTION].minimum_retention_period.ToTimedelta() == timedelta(days=1825)
    assert shared[D.DATA_CLASS_BEHAVIOUR].minimum_retention_period.ToTimedelta() == timedelta(0)
    first = await isolated.ListRetentionPolicies(R.ListRetentionPoliciesRequest(page_size=4), metadata=AUDITOR)
    rest = await isolated.ListRetentionPolicies(R.ListRetentionPoliciesRequest(
        page_size=10, page_token=first.next_page_token), metadata=AUDITOR)
    assert len(first.retention_policies) == 4 and len(rest.retention_policies) == 5 and not rest.next_page_token


async def test_update_changes_the_masked_fields_once(isolated) -> None:
    current = {p.name: p for p in await policies(isolated)}["retentionPolicies/consent"]
    changed = await update(isolated, "consent", ["retention_period", "legal_basis"], etag=current.etag,
                           retention_period=days(400), legal_basis="Internal policy CP-7")
    assert changed.retention_period.ToTimedelta() == timedelta(days=400)
    assert changed.legal_basis == "Internal policy CP-7"
    assert changed.anchor == current.anchor and int(changed.etag) == int(current.etag) + 1
    assert changed.update_time.ToDatetime() >= current.update_time.ToDatetime()
    again = await update(isolated, "consent", ["retention_period", "legal_basis"], etag=changed.etag,
                         retention_period=days(400), legal_basis="Internal policy CP-7")
    assert again.etag == changed.etag  # the same values again: no new version
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await update(isolated, "consent", ["legal_basis"], etag=current.etag, legal_basis="x")
    assert stale.value.code() == grpc.StatusCode.ABORTED


@pytest.mark.parametrize(("slug", "paths", "values", "violations"), [
    ("transaction", ["retention_period"], {"retention_period": days(30)}, {"retention_policy.retention_period"}),
    ("behaviour", ["retention_period"], {"retention_period": duration_pb2.Duration(seconds=DAY + 1)},
     {"retention_policy.retention_period"}),
    ("behaviour", ["retention_period"], {"retention_period": days(36526)}, {"retention_policy.retention_period"}),
    ("identity", ["anchor", "action"], {"anchor": R.RETENTION_ANCHOR_RECORD_TIME, "action": R.RETENTION_ACTION_DELETE},
     {"retention_policy.anchor", "retention_policy.action"}),
    ("audit", ["action", "overrides_erasure", "legal_basis"],
     {"action": R.RETENTION_ACTION_ANONYMISE, "overrides_erasure": True, "legal_basis": "x" * 501},
     {"retention_policy.action", "retention_policy.overrides_erasure", "retention_policy.legal_basis"}),
    ("behaviour", [], {}, {"update_mask"}),
    ("behaviour", ["data_class"], {}, {"update_mask"}),
    ("Behaviour!", ["legal_basis"], {}, {"retention_policy.name"}),
])
async def test_bad_updates_name_the_field_and_change_nothing(profile, slug, paths, values, violations) -> None:
    before = await policies(profile)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await update(profile, slug, paths, **values)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(bad.value)) == violations
    assert await policies(profile) == before


async def test_policies_of_unknown_classes_do_not_exist_and_only_admins_change_policies(profile) -> None:
    for slug in ("non-personal", "gossip"):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await update(profile, slug, ["legal_basis"], legal_basis="x")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await update(profile, "behaviour", ["legal_basis"], metadata=AUDITOR, legal_basis="x")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as denied_list:
        await profile.ListRetentionPolicies(R.ListRetentionPoliciesRequest(), metadata=bearer(Role.MARKETER))
    assert denied_list.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_short_retention_purges_exactly_the_old_events(isolated, isolated_profile, isolated_seeder,
                                                               helpers) -> None:
    _, runtime = isolated_profile
    now = datetime.now(UTC)
    old, older, recent = now - timedelta(days=40), now - timedelta(days=100), now - timedelta(hours=1)
    seeded = await isolated_seeder.customer(closed_on=None, holdings_open=True, event_times=(older, old, recent))
    await update(isolated, "behaviour", ["retention_period"], retention_period=days(30))
    await update(isolated, "transaction", ["retention_period", "anchor", "action"], retention_period=days(30),
                 anchor=R.RETENTION_ANCHOR_RECORD_TIME, action=R.RETENTION_ACTION_DELETE)
    cutoff = now - timedelta(days=30)
    events = "SELECT event_id, event_type IN (6, 7) FROM customer_event ORDER BY event_id"
    everything = await helpers.rows(runtime, events)
    due = set(seeded.event_ids[:4])  # a visit and a transaction at each of the two old times
    expected_gone = {row[0] for row in await helpers.rows(
        runtime, "SELECT event_id FROM customer_event WHERE occur_time < :c", c=cutoff)}
    assert due <= expected_gone
    month = older.strftime("customer_event_p%Y_%m")
    assert await helpers.rows(runtime, "SELECT count(*) FROM pg_class WHERE relname = :m", m=month) == [(1,)]

    counted = by_class(await purge(isolated, helpers, D.DATA_CLASS_BEHAVIOUR, D.DATA_CLASS_TRANSACTION,
                                   validate_only=True))
    assert await helpers.rows(runtime, events) == everything
    gone_tx = sum(1 for e, tx in everything if e in expected_gone and tx)
    assert (counted[D.DATA_CLASS_TRANSACTION].deleted_count, counted[D.DATA_CLASS_BEHAVIOUR].deleted_count) == (
        gone_tx, len(expected_gone) - gone_tx)

    result = by_class(await purge(isolated, helpers, D.DATA_CLASS_BEHAVIOUR, D.DATA_CLASS_TRANSACTION))
    left = await helpers.rows(runtime, events)
    assert {e for e, _ in left} == {e for e, _ in everything} - expected_gone
    assert result[D.DATA_CLASS_TRANSACTION].deleted_count + result[D.DATA_CLASS_BEHAVIOUR].deleted_count == len(
        expected_gone)
    assert abs(result[D.DATA_CLASS_BEHAVIOUR].cutoff_time.ToDatetime(tzinfo=UTC) - cutoff) < timedelta(minutes=5)
    # The oldest month went whole (no row-by-row delete), and the id ledger forgot the purged ids.
    assert await helpers.rows(runtime, "SELECT count(*) FROM pg_class WHERE relname = :m", m=month) == [(0,)]
    assert await helpers.rows(runtime, "SELECT count(*) FROM customer_event_id WHERE event_id = ANY(:ids)",
                              ids=list(expected_gone)) == [(0,)]
    listed = {p.data_class: p for p in await policies(isolated)}
    assert listed[D.DATA_CLASS_BEHAVIOUR].HasField("last_purge_time")
    # Under a policy that admits it again, an event of a month whose partition was dropped can be
    # ingested (the month is created anew); under the 30-day policy it is refused as too old.
    await update(isolated, "behaviour", ["retention_period"], retention_period=days(3 * 365))
    late = helpers.stamp(older + timedelta(hours=1))
    response = await helpers.ingest(isolated, [event_pb2.CustomerEvent(
        event_id=f"late-{uuid.uuid4().hex[:8]}", customer=seeded.name, event_type=event_pb2.EVENT_TYPE_LOGIN,
        channel=event_pb2.EVENT_CHANNEL_MOBILE_BANKING, occur_time=late, source_system="mobile-banking",
        login=event_pb2.LoginDetail(success=True))])
    assert response.accepted_count == 1 and not response.rejections


async def test_closed_customers_past_retention_go_through_the_erasure_path(
        isolated, isolated_profile, isolated_seeder, helpers) -> None:
    _, runtime = isolated_profile
    today = datetime.now(UTC).date()
    due = await isolated_seeder.customer(closed_on=today - timedelta(days=10))
    recent = await isolated_seeder.customer(closed_on=today - timedelta(days=2))
    live = await isolated_seeder.customer(holdings_open=True)
    for slug in ("identity", "contact", "demographic", "special-category", "consent"):
        await update(isolated, slug, ["retention_period"], retention_period=days(5))
    sealed = "SELECT state, mobile_phone_sealed IS NULL, octet_length(full_name_sealed) FROM customer" \
             " WHERE customer_id = :c"
    feed = change_feed(isolated, pb.WatchChangesRequest, ADMIN)
    cursor = await tail_cursor(feed)
    classes = (D.DATA_CLASS_IDENTITY, D.DATA_CLASS_CONTACT, D.DATA_CLASS_DEMOGRAPHIC, D.DATA_CLASS_SPECIAL_CATEGORY,
               D.DATA_CLASS_CONSENT)
    counted = by_class(await purge(isolated, helpers, *classes, validate_only=True))
    assert counted[D.DATA_CLASS_IDENTITY].anonymised_count >= 1 and counted[D.DATA_CLASS_CONSENT].deleted_count >= 2
    assert (await helpers.rows(runtime, sealed, c=due.customer_id))[0][0] == 1

    result = by_class(await purge(isolated, helpers, *classes))
    assert result[D.DATA_CLASS_IDENTITY].anonymised_count == counted[D.DATA_CLASS_IDENTITY].anonymised_count
    assert await helpers.rows(runtime, sealed, c=due.customer_id) == [(3, True, 0)]
    assert (await helpers.rows(runtime, sealed, c=recent.customer_id))[0][0] == 1
    assert (await helpers.rows(runtime, sealed, c=live.customer_id))[0][0] == 1
    assert await helpers.rows(runtime, "SELECT count(*) FROM consent_record WHERE customer_id = :c",
                              c=due.customer_id) == [(0,)]
    assert await helpers.rows(runtime, "SELECT count(*) FROM holding WHERE customer_id = :c",
                              c=due.customer_id) == [(2,)]  # FINANCIAL was not purged
    def announced(events: list[change_event_pb2.ChangeEvent]) -> bool:
        return any(e.resource_name == due.name and e.change_type == change_event_pb2.CHANGE_TYPE_DELETED
                   for e in events)

    events = await read_changes(feed(after_cursor=cursor), until=announced, seconds=10)
    assert announced(events)
    assert not any(e.resource_name == recent.name for e in events)
    audited = await helpers.rows(runtime, "SELECT principal, action FROM audit_record WHERE resource_name = :n"
                                          " ORDER BY seq DESC LIMIT 1", n=due.name)
    assert audited == [("dpo", "customer.erase")]
    # A second run finds nothing left to do for them.
    again = by_class(await purge(isolated, helpers, *classes))
    assert again[D.DATA_CLASS_IDENTITY].anonymised_count == 0


async def test_old_audit_records_go_but_every_chain_still_verifies(isolated, isolated_profile, helpers) -> None:
    _, runtime = isolated_profile
    chain, prev = f"reads:{uuid.uuid4()}", GENESIS_HASH
    start = datetime.now(UTC) - timedelta(days=20)
    for n in range(5):  # an old chain, as a process that ran three weeks ago left it
        at = start + timedelta(minutes=n)
        entry = AuditEntry(principal="old-rm", action="customer.read", resource_name="customers/OLD-1",
                           purpose="CUSTOMER_SERVICE", justification=f"visit {n}")
        digest = record_hash(prev, at, entry, chain_id=chain)
        await helpers.execute(runtime, "INSERT INTO audit_record (chain_id, recorded_at, principal, action,"
                                       " resource_name, purpose, justification, trace_id, hash_recipe, prev_hash,"
                                       " hash) VALUES (:c, :t, :p, :a, :r, :u, :j, '', 2, :prev, :h)",
                              c=chain, t=at, p=entry.principal, a=entry.action, r=entry.resource_name,
                              u=entry.purpose, j=entry.justification, prev=prev, h=digest)
        prev = digest
    await update(isolated, "audit", ["retention_period"], retention_period=days(7))
    counted = by_class(await purge(isolated, helpers, D.DATA_CLASS_AUDIT, validate_only=True))
    assert counted[D.DATA_CLASS_AUDIT].deleted_count == 4  # the chain's newest record stays

    result = by_class(await purge(isolated, helpers, D.DATA_CLASS_AUDIT))
    assert result[D.DATA_CLASS_AUDIT].deleted_count == 4
    left = await helpers.rows(runtime, "SELECT justification FROM audit_record WHERE chain_id = :c", c=chain)
    assert left == [("visit 4",)]
    check = await isolated.VerifyAuditChain(audit_log_pb2.VerifyAuditChainRequest(), metadata=AUDITOR)
    assert check.valid, check


async def test_the_purge_is_idempotent_per_request_and_checks_its_classes(isolated, isolated_profile,
                                                                          helpers) -> None:
    _, runtime = isolated_profile
    request_id = str(uuid.uuid4())
    request = R.RunRetentionPurgeRequest(data_classes=[D.DATA_CLASS_SPECIAL_CATEGORY], request_id=request_id,
                                         validate_only=True)
    first = (await isolated.RunRetentionPurge(request, metadata=ADMIN)).operation
    again = (await isolated.RunRetentionPurge(request, metadata=ADMIN)).operation
    assert again.name == first.name
    await helpers.wait_for(isolated, first)
    count = "SELECT count(*) FROM operation WHERE kind = 'profile.retention_purge'"
    before = await helpers.rows(runtime, count)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await isolated.RunRetentionPurge(R.RunRetentionPurgeRequest(data_classes=[0, D.DATA_CLASS_NON_PERSONAL, 42],
                                                                    request_id="nope"), metadata=ADMIN)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {"data_classes[0]", "data_classes[1]", "data_classes[2]", "request_id"}
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await isolated.RunRetentionPurge(R.RunRetentionPurgeRequest(), metadata=AUDITOR)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await helpers.rows(runtime, count) == before
    assert error_reason(bad.value) == "INVALID_ARGUMENT"


async def test_a_full_purge_also_trims_the_change_feed(isolated, isolated_profile, helpers) -> None:
    _, runtime = isolated_profile
    await helpers.execute(runtime, "INSERT INTO outbox_event (event_id, resource_type, resource_name, change_type,"
                                   " payload, actor, occurred_at) VALUES (:i, 'crm.profile.v1.Customer',"
                                   " 'customers/ANCIENT', 2, '', 'test', now() - interval '400 days')",
                          i=uuid.uuid4())
    await purge(isolated, helpers)
    assert await helpers.rows(runtime, "SELECT count(*) FROM outbox_event WHERE resource_name = 'customers/ANCIENT'"
                              ) == [(0,)]
    purged = await helpers.rows(runtime, "SELECT purged_through FROM outbox_state")
    assert purged and purged[0][0] > 0
