"""The complaint workflow through a real in-process FeedbackService on PostgreSQL: every step on the
timeline with who and when, refused steps change nothing, etags, request_id replays, the
relationship manager's book, and the feed."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta

import grpc
import pytest
import sqlalchemy as sa
from google.type import money_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.feedback.v1 import channel_pb2, complaint_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, error_info, field_violations, next_events, rows_about, tail_cursor

PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="CASE-7")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-101")
OTHER_RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-202")
ADMIN = bearer(Role.ADMIN, subject="admin-9")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
FEED = bearer(Role.SERVICE, subject="svc-campaign")
S = complaint_pb2.ComplaintStatus
A = complaint_pb2.ComplaintAction
UPHELD = complaint_pb2.ComplaintResolution(
    outcome=complaint_pb2.RESOLUTION_OUTCOME_UPHELD, summary="Refunded the second annual fee; 已退还重复年费。",
    root_cause="double_billing", compensation=money_pb2.Money(currency_code="CNY", units=200, nanos=500_000_000))


def rid() -> str:
    return str(uuid.uuid4())


async def file(feedback, complaint, metadata=RM):  # type: ignore[no-untyped-def]
    return (await feedback.FileComplaint(pb.FileComplaintRequest(complaint=complaint, request_id=rid()),
                                         metadata=metadata)).complaint


async def get(feedback, name, metadata=ADMIN):  # type: ignore[no-untyped-def]
    return (await feedback.GetComplaint(pb.GetComplaintRequest(name=name, audit=PURPOSE), metadata=metadata)).complaint


# Each step as (label, call); calls take (feedback, name, metadata) and return the complaint.
def acknowledge(feedback, name, metadata=ADMIN, **kw):  # type: ignore[no-untyped-def]
    return _complaint(feedback.AcknowledgeComplaint(pb.AcknowledgeComplaintRequest(
        name=name, response_channel=channel_pb2.CHANNEL_CALL_CENTRE, note="Called the customer back.",
        **{"request_id": rid(), **kw}), metadata=metadata))


def assign(feedback, name, metadata=ADMIN, **kw):  # type: ignore[no-untyped-def]
    return _complaint(feedback.AssignComplaint(pb.AssignComplaintRequest(
        name=name, **{"assignee": "rm-101", "note": "Card team lead", "request_id": rid(), **kw}), metadata=metadata))


def escalate(feedback, name, metadata=ADMIN, **kw):  # type: ignore[no-untyped-def]
    return _complaint(feedback.EscalateComplaint(pb.EscalateComplaintRequest(
        name=name, **{"reason": "Customer threatens to go to the regulator", "request_id": rid(), **kw}),
        metadata=metadata))


def resolve(feedback, name, metadata=ADMIN, **kw):  # type: ignore[no-untyped-def]
    return _complaint(feedback.ResolveComplaint(pb.ResolveComplaintRequest(
        name=name, **{"resolution": UPHELD, "request_id": rid(), **kw}), metadata=metadata))


def close(feedback, name, metadata=ADMIN, **kw):  # type: ignore[no-untyped-def]
    return _complaint(feedback.CloseComplaint(pb.CloseComplaintRequest(
        name=name, **{"reason": complaint_pb2.CLOSE_REASON_CUSTOMER_CONFIRMED, "request_id": rid(), **kw}),
        metadata=metadata))


def reopen(feedback, name, metadata=ADMIN, **kw):  # type: ignore[no-untyped-def]
    return _complaint(feedback.ReopenComplaint(pb.ReopenComplaintRequest(
        name=name, **{"reason": "The refund never arrived", "request_id": rid(), **kw}), metadata=metadata))


def update(feedback, name, metadata=ADMIN, **kw):  # type: ignore[no-untyped-def]
    return _complaint(feedback.UpdateComplaint(pb.UpdateComplaintRequest(
        complaint=complaint_pb2.Complaint(name=name, priority=complaint_pb2.COMPLAINT_PRIORITY_URGENT, **kw),
        update_mask={"paths": ["priority"]}), metadata=metadata))


async def _complaint(call):  # type: ignore[no-untyped-def]
    return (await call).complaint


async def add_note(feedback, parent, metadata=ADMIN, request_id=None):  # type: ignore[no-untyped-def]
    return (await feedback.AddComplaintNote(pb.AddComplaintNoteRequest(
        parent=parent,
        note=complaint_pb2.ComplaintNote(type=complaint_pb2.NOTE_TYPE_INTERNAL, text="Checked the ledger"),
        request_id=request_id or rid()), metadata=metadata)).note


async def test_the_happy_path_is_recorded_on_the_timeline(feedback, feedback_service, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    acknowledged = await acknowledge(feedback, filed.name)
    assert acknowledged.status == S.COMPLAINT_STATUS_ACKNOWLEDGED
    assert acknowledged.sla.respond_time.ToDatetime() > filed.create_time.ToDatetime() - timedelta(seconds=1)
    assigned = await assign(feedback, filed.name)
    assert (assigned.status, assigned.assignee) == (S.COMPLAINT_STATUS_IN_PROGRESS, "rm-101")
    note = await add_note(feedback, filed.name, metadata=RM)
    assert note.name == f"{filed.name}/notes/3" and note.author == "rm-101"
    escalated = await escalate(feedback, filed.name, assignee="head-5")
    assert (escalated.escalation_level, escalated.assignee) == (1, "head-5")
    resolved = await resolve(feedback, filed.name)
    assert resolved.status == S.COMPLAINT_STATUS_RESOLVED
    assert resolved.resolution.summary == UPHELD.summary and resolved.resolution.resolver == "admin-9"
    assert (resolved.resolution.compensation.units, resolved.resolution.compensation.nanos) == (200, 500_000_000)
    assert resolved.sla.HasField("resolve_time")
    reopened = await reopen(feedback, filed.name)
    assert (reopened.status, reopened.reopen_count) == (S.COMPLAINT_STATUS_REOPENED, 1)
    assert not reopened.sla.HasField("resolve_time")
    assert reopened.sla.resolve_by.ToDatetime(tzinfo=UTC) - reopened.update_time.ToDatetime(tzinfo=UTC) == \
        timedelta(hours=48), "a new resolve clock runs from the reopening under the default policy"
    await resolve(feedback, filed.name)
    closed = await close(feedback, filed.name)
    assert closed.status == S.COMPLAINT_STATUS_CLOSED and closed.HasField("close_time")

    final = await get(feedback, filed.name)
    steps = [(s.action, s.from_status, s.to_status, s.actor) for s in final.history]
    assert steps == [
        (A.COMPLAINT_ACTION_FILED, S.COMPLAINT_STATUS_OPEN, S.COMPLAINT_STATUS_OPEN, "rm-101"),
        (A.COMPLAINT_ACTION_ACKNOWLEDGED, S.COMPLAINT_STATUS_OPEN, S.COMPLAINT_STATUS_ACKNOWLEDGED, "admin-9"),
        (A.COMPLAINT_ACTION_ASSIGNED, S.COMPLAINT_STATUS_ACKNOWLEDGED, S.COMPLAINT_STATUS_IN_PROGRESS, "admin-9"),
        (A.COMPLAINT_ACTION_NOTE_ADDED, S.COMPLAINT_STATUS_IN_PROGRESS, S.COMPLAINT_STATUS_IN_PROGRESS, "rm-101"),
        (A.COMPLAINT_ACTION_ESCALATED, S.COMPLAINT_STATUS_IN_PROGRESS, S.COMPLAINT_STATUS_IN_PROGRESS, "admin-9"),
        (A.COMPLAINT_ACTION_RESOLVED, S.COMPLAINT_STATUS_IN_PROGRESS, S.COMPLAINT_STATUS_RESOLVED, "admin-9"),
        (A.COMPLAINT_ACTION_REOPENED, S.COMPLAINT_STATUS_RESOLVED, S.COMPLAINT_STATUS_REOPENED, "admin-9"),
        (A.COMPLAINT_ACTION_RESOLVED, S.COMPLAINT_STATUS_REOPENED, S.COMPLAINT_STATUS_RESOLVED, "admin-9"),
        (A.COMPLAINT_ACTION_CLOSED, S.COMPLAINT_STATUS_RESOLVED, S.COMPLAINT_STATUS_CLOSED, "admin-9"),
    ]
    times = [s.step_time.ToDatetime() for s in final.history]
    assert times == sorted(times) and all(s.HasField("step_time") for s in final.history)
    assert [n.text for n in final.notes] == ["Called the customer back.", "Card team lead", "Checked the ledger",
                                             "Customer threatens to go to the regulator", "The refund never arrived"]
    assert final.notes[0].type == complaint_pb2.NOTE_TYPE_CUSTOMER_CONTACT
    assert final.history[4].note == f"{filed.name}/notes/4"
    assert [a for a, _ in await changes_audited(feedback_service, filed.name)] == [
        "complaint.file", "complaint.acknowledged", "complaint.assigned", "complaint.note_added",
        "complaint.escalated", "complaint.resolved", "complaint.reopened", "complaint.resolved", "complaint.closed"]
    (escalation,) = final.escalations
    assert (escalation.level, escalation.reason, escalation.assignee, escalation.actor) == (
        1, "Customer threatens to go to the regulator", "head-5", "admin-9")


async def test_analysts_see_notes_and_resolution_masked(feedback, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    await add_note(feedback, filed.name)
    await resolve(feedback, filed.name)
    seen = await get(feedback, filed.name, metadata=ANALYST)
    assert seen.resolution.summary == "***" and [n.text for n in seen.notes] == ["***"]
    assert set(seen.masked_fields) == {"description", "resolution.summary", "notes.text"}


async def changes_audited(feedback_service, name):  # type: ignore[no-untyped-def]
    """The audit records of changes to one complaint (reads are audited too, by a background writer)."""
    _, runtime = feedback_service
    async with runtime.db.engine.connect() as connection:
        return list((await connection.execute(sa.text(
            "SELECT action, principal FROM audit_record WHERE resource_name = :name AND action <> 'complaint.read' "
            "ORDER BY recorded_at"), {"name": name})).all())


async def _snapshot(feedback, feedback_service, name):  # type: ignore[no-untyped-def]
    complaint = await get(feedback, name)
    return (complaint, await rows_about(feedback_service, "outbox_event", name),
            await changes_audited(feedback_service, name))


# Every step refused from a status the table does not allow it from: (prepare, step, from status).
INVALID = [
    ([], reopen, "reopen open"),
    ([], lambda f, n, **kw: close(f, n, reason=complaint_pb2.CLOSE_REASON_CUSTOMER_CONFIRMED, **kw), "confirm"),
    ([acknowledge], acknowledge, "acknowledge twice"),
    ([resolve], acknowledge, "acknowledge resolved"), ([resolve], resolve, "resolve twice"),
    ([resolve], assign, "assign resolved"), ([resolve], escalate, "escalate resolved"),
    ([resolve], update, "update resolved"),
    ([resolve], lambda f, n, **kw: close(f, n, reason=complaint_pb2.CLOSE_REASON_WITHDRAWN, **kw), "withdraw resolved"),
    ([resolve, close], resolve, "resolve closed"), ([resolve, close], close, "close twice"),
    ([resolve, close], assign, "assign closed"), ([resolve, close], acknowledge, "acknowledge closed"),
    ([resolve, reopen], reopen, "reopen twice"),
]


@pytest.mark.parametrize(("prepare", "step", "label"), INVALID, ids=[i[2] for i in INVALID])
async def test_an_invalid_transition_is_refused_and_changes_nothing(
        feedback, feedback_service, new_complaint, prepare, step, label) -> None:
    filed = await file(feedback, new_complaint())
    for earlier in prepare:
        await earlier(feedback, filed.name)
    before = await _snapshot(feedback, feedback_service, filed.name)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await step(feedback, filed.name)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error.value, domain="feedback.crm")
    assert info.reason == "INVALID_TRANSITION"
    assert info.metadata["from_status"] == complaint_pb2.ComplaintStatus.Name(before[0].status)
    assert info.metadata["to_status"].startswith("COMPLAINT_STATUS_")
    assert await _snapshot(feedback, feedback_service, filed.name) == before


async def test_resolving_without_a_note_is_refused_naming_the_field(feedback, feedback_service, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    before = await _snapshot(feedback, feedback_service, filed.name)
    for summary in ("", "   "):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await resolve(feedback, filed.name, resolution=complaint_pb2.ComplaintResolution(
                outcome=complaint_pb2.RESOLUTION_OUTCOME_NOT_UPHELD, summary=summary))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "resolution note" in field_violations(error.value)["resolution.summary"]
    assert await _snapshot(feedback, feedback_service, filed.name) == before


async def test_escalation_stops_at_level_three(feedback, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    for _ in range(3):
        await escalate(feedback, filed.name)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await escalate(feedback, filed.name)
    assert error_info(error.value).reason == "ESCALATION_LEVEL_MAX"


async def test_a_withdrawn_complaint_cannot_be_reopened(feedback, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    await close(feedback, filed.name, reason=complaint_pb2.CLOSE_REASON_WITHDRAWN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await reopen(feedback, filed.name)
    assert (error.value.code(), error_info(error.value).reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                    "NOT_REOPENABLE")


async def test_a_duplicate_names_another_complaint_of_the_same_customer(feedback, new_complaint) -> None:
    first = await file(feedback, new_complaint())
    second = await file(feedback, new_complaint(customer=first.customer))
    stranger = await file(feedback, new_complaint())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await close(feedback, second.name, reason=complaint_pb2.CLOSE_REASON_DUPLICATE, duplicate_of=stranger.name)
    assert "same customer" in field_violations(error.value)["duplicate_of"]
    closed = await close(feedback, second.name, reason=complaint_pb2.CLOSE_REASON_DUPLICATE, duplicate_of=first.name)
    assert (closed.status, closed.duplicate_of) == (S.COMPLAINT_STATUS_CLOSED, first.name)


@pytest.mark.parametrize("step", [acknowledge, assign, escalate, resolve, update])
async def test_a_stale_etag_is_aborted_and_changes_nothing(feedback, feedback_service, new_complaint, step) -> None:
    filed = await file(feedback, new_complaint())
    await add_note(feedback, filed.name)  # changes the complaint: the filing's etag is now stale
    before = await _snapshot(feedback, feedback_service, filed.name)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await step(feedback, filed.name, etag=filed.etag)
    assert (error.value.code(), error_info(error.value).reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert await _snapshot(feedback, feedback_service, filed.name) == before
    fresh = await step(feedback, filed.name, etag=before[0].etag)
    assert fresh.etag != before[0].etag


async def test_a_repeated_request_id_replays_the_first_answer(feedback, feedback_service, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    key = rid()
    first = await escalate(feedback, filed.name, request_id=key, etag=filed.etag)
    events = await rows_about(feedback_service, "outbox_event", filed.name)
    again = await escalate(feedback, filed.name, request_id=key, etag=filed.etag)
    assert again.escalation_level == first.escalation_level == 1 and again.etag == first.etag
    note_key = rid()
    note = await add_note(feedback, filed.name, request_id=note_key)
    assert await add_note(feedback, filed.name, request_id=note_key) == note
    final = await get(feedback, filed.name)
    assert [s.action for s in final.history].count(A.COMPLAINT_ACTION_ESCALATED) == 1
    assert len(final.notes) == 2  # the escalation reason and one note
    assert await rows_about(feedback_service, "outbox_event", filed.name) == events + 1
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await escalate(feedback, filed.name, request_id=key, reason="another reason")
    assert error_info(error.value).reason == "REQUEST_ID_REUSED"


async def test_a_relationship_manager_works_only_their_own_book(feedback, feedback_service, new_complaint) -> None:
    mine = await file(feedback, new_complaint(), metadata=RM)
    theirs = await file(feedback, new_complaint(customer=mine.customer), metadata=OTHER_RM)
    before = await _snapshot(feedback, feedback_service, theirs.name)
    for step in (acknowledge, assign, escalate, resolve, update):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await step(feedback, theirs.name, metadata=RM)
        assert (error.value.code(), error_info(error.value).reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                        "OUTSIDE_BOOK")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await add_note(feedback, theirs.name, metadata=RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await _snapshot(feedback, feedback_service, theirs.name) == before
    # Assigned to them, it enters their book.
    await assign(feedback, theirs.name, assignee="rm-101")
    assert (await acknowledge(feedback, theirs.name, metadata=RM)).status == S.COMPLAINT_STATUS_IN_PROGRESS
    # The customer's complaint history: all of it for an admin, the manager's own cases for them.
    history = await feedback.ListComplaints(pb.ListComplaintsRequest(customer=mine.customer, audit=PURPOSE),
                                            metadata=ADMIN)
    assert {c.name for c in history.complaints} == {mine.name, theirs.name}
    other = await feedback.ListComplaints(pb.ListComplaintsRequest(customer=mine.customer, audit=PURPOSE),
                                          metadata=OTHER_RM)
    assert [c.name for c in other.complaints] == [theirs.name]


async def test_the_feed_carries_each_step(feedback, new_complaint) -> None:
    def open_feed(**kw):  # type: ignore[no-untyped-def]
        return change_feed(feedback, pb.WatchChangesRequest, FEED)(**kw)

    cursor = await tail_cursor(open_feed)
    filed = await file(feedback, new_complaint())
    for step in (acknowledge, assign, escalate, resolve, reopen):
        await step(feedback, filed.name)
    await add_note(feedback, filed.name)
    events = [e for e in await next_events(open_feed, cursor, 7, resource_types=["crm.feedback.v1.Complaint"])
              if e.resource_name == filed.name]
    assert [e.change_type for e in events] == [change_event_pb2.CHANGE_TYPE_CREATED] + \
        [change_event_pb2.CHANGE_TYPE_EVENT] * 6
    actions, statuses = [], []
    for event in events[1:]:
        payload = complaint_pb2.ComplaintStepEvent()
        assert event.payload.Unpack(payload)
        actions.append(payload.step.action)
        statuses.append(payload.complaint.status)
        assert payload.complaint.description == "***" and not payload.complaint.notes
        assert event.actor == "admin-9"
    assert actions == [A.COMPLAINT_ACTION_ACKNOWLEDGED, A.COMPLAINT_ACTION_ASSIGNED, A.COMPLAINT_ACTION_ESCALATED,
                       A.COMPLAINT_ACTION_RESOLVED, A.COMPLAINT_ACTION_REOPENED, A.COMPLAINT_ACTION_NOTE_ADDED]
    assert statuses[3:5] == [S.COMPLAINT_STATUS_RESOLVED, S.COMPLAINT_STATUS_REOPENED]


async def test_update_sets_the_product_and_refuses_a_bad_one(feedback, new_complaint) -> None:
    filed = (await feedback.FileComplaint(pb.FileComplaintRequest(
        complaint=new_complaint(product="credit_card"), request_id=rid()), metadata=ADMIN)).complaint
    assert filed.product == "credit_card"
    moved = (await feedback.UpdateComplaint(pb.UpdateComplaintRequest(
        complaint=complaint_pb2.Complaint(name=filed.name, product="debit_card"),
        update_mask={"paths": ["product"]}), metadata=ADMIN)).complaint
    assert moved.product == "debit_card"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.UpdateComplaint(pb.UpdateComplaintRequest(
            complaint=complaint_pb2.Complaint(name=filed.name, product="Debit Card"),
            update_mask={"paths": ["product"]}), metadata=ADMIN)
    assert "complaint.product" in field_violations(error.value)
