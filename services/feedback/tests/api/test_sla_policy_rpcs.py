"""SlaPolicy RPCs, and complaints picking their policy, through a real in-process feedback server.

The database is shared by the session: each test uses its own (category, priority) pairs and
deletes its policies, so other tests keep seeing the 48 h default.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from crm.common.v1 import audit_pb2
from crm.feedback.v1 import classification_pb2, complaint_pb2, sla_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, field_violations, row_counts

ADMIN = bearer(Role.ADMIN, subject="admin-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="CASE-1")
WEALTH = classification_pb2.COMPLAINT_CATEGORY_WEALTH_AND_INVESTMENT
PRIVACY = classification_pb2.COMPLAINT_CATEGORY_PRIVACY_AND_DATA
URGENT, LOW = complaint_pb2.COMPLAINT_PRIORITY_URGENT, complaint_pb2.COMPLAINT_PRIORITY_LOW
WRITTEN = ("sla_policy", "outbox_event", "idempotency_key")


def hours(n: float) -> Duration:
    return Duration(seconds=int(n * 3600))


def mask(*paths: str) -> FieldMask:
    return FieldMask(paths=list(paths))


def policy(**overrides: Any) -> sla_pb2.SlaPolicy:
    fields: dict[str, Any] = {"display_name": "Privacy - urgent", "category": PRIVACY, "priority": URGENT,
                              "respond_within": hours(4), "resolve_within": hours(24)}
    fields.update(overrides)
    return sla_pb2.SlaPolicy(**fields)


@pytest.fixture
async def created(feedback: Any) -> AsyncIterator[Any]:
    """create(policy) -> the stored policy; every policy created is deleted after the test."""
    names: list[str] = []

    async def create(message: sla_pb2.SlaPolicy, request_id: str | None = None) -> sla_pb2.SlaPolicy:
        response = await feedback.CreateSlaPolicy(pb.CreateSlaPolicyRequest(
            sla_policy=message, request_id=request_id or str(uuid.uuid4())), metadata=ADMIN)
        names.append(response.sla_policy.name)
        return response.sla_policy

    yield create
    for name in names:
        try:
            await feedback.DeleteSlaPolicy(pb.DeleteSlaPolicyRequest(name=name), metadata=ADMIN)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def test_create_get_list_update_delete(feedback: Any, feedback_service: Any, created: Any) -> None:
    made = await created(policy(sla_policy_id="privacy-urgent", escalate_on_breach=True))
    assert made.name == "slaPolicies/privacy-urgent"
    assert made.etag and made.clock_mode == sla_pb2.SLA_CLOCK_MODE_ELAPSED
    assert made.respond_within == hours(4) and made.resolve_within == hours(24)
    got = (await feedback.GetSlaPolicy(pb.GetSlaPolicyRequest(name=made.name), metadata=RM)).sla_policy
    assert got == made

    listed = (await feedback.ListSlaPolicies(pb.ListSlaPoliciesRequest(category=PRIVACY), metadata=RM)).sla_policies
    assert [p.name for p in listed] == [made.name]
    with_wildcards = (await feedback.ListSlaPolicies(pb.ListSlaPoliciesRequest(
        category=PRIVACY, include_wildcards=True), metadata=RM)).sla_policies
    assert {p.name for p in with_wildcards} >= {made.name, "slaPolicies/default"}

    updated = (await feedback.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(
        sla_policy=sla_pb2.SlaPolicy(name=made.name, etag=made.etag, resolve_within=hours(36)),
        update_mask=mask("resolve_within")), metadata=ADMIN)).sla_policy
    assert updated.resolve_within == hours(36) and updated.respond_within == hours(4)
    assert updated.etag != made.etag

    before = await row_counts(feedback_service, "sla_policy")
    await feedback.DeleteSlaPolicy(pb.DeleteSlaPolicyRequest(name=made.name, etag=updated.etag), metadata=ADMIN)
    assert await row_counts(feedback_service, "sla_policy") == (before[0] - 1,)
    missing = await refused(feedback.GetSlaPolicy(pb.GetSlaPolicyRequest(name=made.name), metadata=RM))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing).reason == "SLA_POLICY_NOT_FOUND"


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("respond_within", Duration(seconds=-60), "must be positive"),
    ("respond_within", Duration(), "must be positive"),
    ("resolve_within", Duration(seconds=-3600), "must be positive"),
    ("resolve_within", hours(2), "must be at least respond_within"),
    ("display_name", "", "is required"),
    ("clock_mode", 99, "SlaClockMode"),
    ("clock_mode", sla_pb2.SLA_CLOCK_MODE_BUSINESS_CALENDAR, "required when clock_mode is"),
    ("pre_breach_escalation_share", 1.0, "less than 1"),
    ("pre_breach_escalation_share", -0.5, "greater than 0"),
    ("sla_policy_id", "default", "reserved"),
    ("category", 0, "category or priority must be set"),
])
async def test_bad_input_on_create_names_the_field_and_changes_nothing(
        feedback: Any, feedback_service: Any, field: str, value: Any, rule: str) -> None:
    message = policy()
    if field == "category":
        message = policy(category=0, priority=0)
    elif isinstance(value, Duration):
        getattr(message, field).CopyFrom(value)
    else:
        setattr(message, field, value)
    before = await row_counts(feedback_service, *WRITTEN)
    error = await refused(feedback.CreateSlaPolicy(pb.CreateSlaPolicyRequest(
        sla_policy=message, request_id=str(uuid.uuid4())), metadata=ADMIN))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violated = "calendar" if value == sla_pb2.SLA_CLOCK_MODE_BUSINESS_CALENDAR else field
    assert rule in field_violations(error)[f"sla_policy.{violated}"]
    assert await row_counts(feedback_service, *WRITTEN) == before


async def test_bad_update_and_stale_etag_change_nothing(feedback: Any, feedback_service: Any, created: Any) -> None:
    made = await created(policy(priority=LOW, display_name="Privacy - low"))
    before = await row_counts(feedback_service, *WRITTEN)
    negative = await refused(feedback.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(
        sla_policy=sla_pb2.SlaPolicy(name=made.name, respond_within=Duration(seconds=-1)),
        update_mask=mask("respond_within")), metadata=ADMIN))
    assert negative.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(negative)["sla_policy.respond_within"] == "must be positive"
    immutable = await refused(feedback.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(
        sla_policy=sla_pb2.SlaPolicy(name=made.name, category=WEALTH),
        update_mask=mask("category")), metadata=ADMIN))
    assert "update_mask" in field_violations(immutable)
    await feedback.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(
        sla_policy=sla_pb2.SlaPolicy(name=made.name, etag=made.etag, display_name="Privacy - low (v2)"),
        update_mask=mask("display_name")), metadata=ADMIN)
    after_good_update = await row_counts(feedback_service, *WRITTEN)
    assert after_good_update == (before[0], before[1] + 1, before[2])
    for call in (
        feedback.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(
            sla_policy=sla_pb2.SlaPolicy(name=made.name, etag=made.etag, display_name="lost update"),
            update_mask=mask("display_name")), metadata=ADMIN),
        feedback.DeleteSlaPolicy(pb.DeleteSlaPolicyRequest(name=made.name, etag=made.etag), metadata=ADMIN),
    ):
        stale = await refused(call)
        assert stale.code() == grpc.StatusCode.ABORTED
        assert error_info(stale).reason == "ETAG_MISMATCH"
    assert await row_counts(feedback_service, *WRITTEN) == after_good_update
    got = (await feedback.GetSlaPolicy(pb.GetSlaPolicyRequest(name=made.name), metadata=RM)).sla_policy
    assert got.display_name == "Privacy - low (v2)"


async def test_same_pair_twice_is_already_exists_and_a_retry_replays(feedback: Any, created: Any) -> None:
    key = str(uuid.uuid4())
    first = await created(policy(priority=complaint_pb2.COMPLAINT_PRIORITY_MEDIUM), request_id=key)
    again = await created(policy(priority=complaint_pb2.COMPLAINT_PRIORITY_MEDIUM), request_id=key)
    assert again.name == first.name
    duplicate = await refused(feedback.CreateSlaPolicy(pb.CreateSlaPolicyRequest(
        sla_policy=policy(priority=complaint_pb2.COMPLAINT_PRIORITY_MEDIUM), request_id=str(uuid.uuid4())),
        metadata=ADMIN))
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(duplicate).reason == "SLA_POLICY_EXISTS"


async def test_the_default_policy_is_readable_and_cannot_be_deleted(feedback: Any) -> None:
    default = (await feedback.GetSlaPolicy(pb.GetSlaPolicyRequest(name="slaPolicies/default"),
                                           metadata=RM)).sla_policy
    assert default.respond_within == hours(48) and default.resolve_within == hours(48)
    assert default.category == 0 and default.priority == 0
    error = await refused(feedback.DeleteSlaPolicy(pb.DeleteSlaPolicyRequest(name="slaPolicies/default"),
                                                   metadata=ADMIN))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_complaint_takes_the_most_specific_policy_and_reopen_follows_it(
        feedback: Any, created: Any, new_complaint: Any) -> None:
    urgent = await created(policy(display_name="Wealth - urgent", category=WEALTH, priority=URGENT,
                                  respond_within=hours(24), resolve_within=hours(24)))
    any_priority = await created(policy(display_name="Wealth", category=WEALTH, priority=0,
                                        respond_within=hours(12), resolve_within=hours(72)))

    async def file(**fields: Any) -> complaint_pb2.Complaint:
        return (await feedback.FileComplaint(pb.FileComplaintRequest(
            complaint=new_complaint(**fields), request_id=str(uuid.uuid4())), metadata=RM)).complaint

    filed = await file(category=WEALTH, priority=URGENT)
    received = filed.receive_time.ToDatetime(tzinfo=UTC)
    assert filed.sla.sla_policy == urgent.name
    assert filed.sla.respond_by.ToDatetime(tzinfo=UTC) - received == timedelta(hours=24)
    assert filed.sla.resolve_by.ToDatetime(tzinfo=UTC) - received == timedelta(hours=24)

    low = await file(category=WEALTH, priority=LOW)
    assert low.sla.sla_policy == any_priority.name
    assert low.sla.respond_by.ToDatetime(tzinfo=UTC) - low.receive_time.ToDatetime(tzinfo=UTC) == timedelta(hours=12)
    other = await file(category=classification_pb2.COMPLAINT_CATEGORY_CARDS, priority=LOW)
    assert other.sla.sla_policy == "slaPolicies/default"

    # Reopening restarts the resolve clock under the policy as it is now.
    await feedback.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(
        sla_policy=sla_pb2.SlaPolicy(name=urgent.name, resolve_within=hours(30)),
        update_mask=mask("resolve_within")), metadata=ADMIN)
    for call, request in (
        (feedback.AcknowledgeComplaint, pb.AcknowledgeComplaintRequest(
            name=filed.name, response_channel=filed.channel, note="Called back.")),
        (feedback.ResolveComplaint, pb.ResolveComplaintRequest(
            name=filed.name, resolution=complaint_pb2.ComplaintResolution(
                outcome=complaint_pb2.RESOLUTION_OUTCOME_UPHELD, summary="Refunded."))),
    ):
        request.request_id = str(uuid.uuid4())
        await call(request, metadata=ADMIN)
    before = datetime.now(UTC)
    reopened = (await feedback.ReopenComplaint(pb.ReopenComplaintRequest(
        name=filed.name, reason="Refund never arrived", request_id=str(uuid.uuid4())), metadata=ADMIN)).complaint
    restart = reopened.sla.resolve_by.ToDatetime(tzinfo=UTC) - timedelta(hours=30)
    assert before - timedelta(seconds=1) <= restart <= datetime.now(UTC)
    assert reopened.sla.respond_by == filed.sla.respond_by
