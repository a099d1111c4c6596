"""Care tasks through CampaignService: create (idempotent), read, list, update, delete and complete,
with the relationship manager's book and assignments enforced and bad input changing nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from crm.campaign.v1 import campaign_pb2, care_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.book.tables import customer_manager
from crm_campaign.care.tables import care_task
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations, rows_about
from crmkit.values import timestamp

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
AUDITOR = bearer(Role.AUDITOR, subject="auditor-1")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")


def rm(subject: str) -> tuple[tuple[str, str], ...]:
    return bearer(Role.RELATIONSHIP_MANAGER, subject=subject)


def due_in(days: float) -> Any:
    return timestamp(datetime.now(UTC) + timedelta(days=days))


def new_task(customer: str, assignee: str, **fields: Any) -> care_pb2.CareTask:
    task = care_pb2.CareTask(customer=customer, kind=care_pb2.CARE_TASK_KIND_BIRTHDAY_GREETING,
                             title="Birthday greeting", description="Bring the card from the branch.",
                             assignee=assignee, due_time=due_in(3))
    for key, value in fields.items():
        getattr(task, key).CopyFrom(value) if hasattr(value, "CopyFrom") else setattr(task, key, value)
    return task


@pytest.fixture
def book(campaign_service: tuple[Any, Any]) -> Any:
    """`await book({customer_id: manager})`: the copy of profile's customers as its follower leaves it;
    returns fresh ids: {customer_id: customers/<id>}."""
    _, runtime = campaign_service

    async def seed(managers: dict[str, str]) -> dict[str, str]:
        tag = uuid.uuid4().hex[:6]
        async with runtime.db.unit_of_work() as uow:
            await uow.execute(sa.insert(customer_manager), [
                {"customer_id": f"{key}-{tag}", "relationship_manager_id": manager, "event_at": datetime.now(UTC)}
                for key, manager in managers.items()])
        return {key: f"customers/{key}-{tag}" for key in managers}
    return seed


async def create(campaigns: Any, task: care_pb2.CareTask, metadata: Any, request_id: str = "") -> care_pb2.CareTask:
    return (await campaigns.CreateCareTask(pb.CreateCareTaskRequest(care_task=task, request_id=request_id),
                                           metadata=metadata)).care_task


async def test_a_marketer_creates_a_task_once_per_request_id_and_reads_it_back(
        campaigns, campaign_service, book) -> None:
    customers = await book({"c": "rm-1"})
    request_id, task = str(uuid.uuid4()), new_task(customers["c"], "rm-1")
    first = await create(campaigns, task, MARKETER, request_id)
    again = await create(campaigns, task, MARKETER, request_id)
    assert again.name == first.name and again.etag == first.etag
    assert await rows_about(campaign_service, "outbox_event", first.name) == 1, "a retried create has one effect"
    assert first.name.startswith("careTasks/") and first.etag
    assert (first.state, first.priority, first.creator, first.source) == (
        care_pb2.CARE_TASK_STATE_OPEN, care_pb2.CARE_TASK_PRIORITY_NORMAL, "marketer-a", "")
    assert first.HasField("create_time") and not first.HasField("close_time")
    got = (await campaigns.GetCareTask(pb.GetCareTaskRequest(name=first.name), metadata=AUDITOR)).care_task
    assert got == first


async def test_bad_tasks_are_refused_naming_every_field_and_nothing_is_written(
        campaigns, book, count_rows) -> None:
    customers = await book({"c": "rm-1"})
    before = await count_rows("care_task")
    bad = care_pb2.CareTask(customer=customers["c"], kind=care_pb2.CareTaskKind.ValueType(42),
                            title="Call 13812345678", description="Write to li.wei@example.com",
                            assignee="two words", priority=care_pb2.CareTaskPriority.ValueType(9),
                            due_time=due_in(400))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(campaigns, bad, MARKETER)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {
        "care_task.kind", "care_task.title", "care_task.description", "care_task.assignee", "care_task.priority",
        "care_task.due_time"}
    assert "personal data" in field_violations(caught.value)["care_task.title"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(campaigns, care_pb2.CareTask(customer="clients/1", offer="offers/x", due_time=due_in(-1)),
                     MARKETER)
    assert set(field_violations(caught.value)) == {"care_task.customer", "care_task.offer"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(campaigns, care_pb2.CareTask(due_time=due_in(-1)), MARKETER)
    assert set(field_violations(caught.value)) == {
        "care_task.customer", "care_task.kind", "care_task.title", "care_task.assignee", "care_task.due_time"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(campaigns, new_task(customers["c"], "rm-1", offer="campaigns/none/offers/none"), MARKETER)
    assert field_violations(caught.value) == {"care_task.offer": "must name an existing offer"}
    assert await count_rows("care_task") == before


async def test_a_relationship_manager_creates_tasks_for_their_own_book_assigned_to_themselves(
        campaigns, book, count_rows) -> None:
    customers = await book({"mine": "rm-1", "theirs": "rm-2", "unmanaged": ""})
    mine = await create(campaigns, new_task(customers["mine"], "rm-1"), rm("rm-1"))
    assert mine.creator == "rm-1"
    before = await count_rows("care_task")
    for customer, assignee in ((customers["theirs"], "rm-1"), (customers["unmanaged"], "rm-1"),
                               ("customers/never-heard-of", "rm-1"), (customers["mine"], "rm-2"),
                               (customers["mine"], "branch:SH-001")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(campaigns, new_task(customer, assignee), rm("rm-1"))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, (customer, assignee)
    assert await count_rows("care_task") == before
    for role in (APP, AUDITOR):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(campaigns, new_task(customers["mine"], "rm-1"), role)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_relationship_managers_see_and_work_only_their_own_tasks(campaigns, book) -> None:
    customers = await book({"a": "rm-a", "b": "rm-b"})
    task_a = await create(campaigns, new_task(customers["a"], "rm-a"), MARKETER)
    task_b = await create(campaigns, new_task(customers["b"], "rm-b"), MARKETER)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.GetCareTask(pb.GetCareTaskRequest(name=task_a.name), metadata=rm("rm-b"))
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_ASSIGNED")
    listed = (await campaigns.ListCareTasks(pb.ListCareTasksRequest(assignee="rm-a", page_size=1000),
                                            metadata=rm("rm-b"))).care_tasks
    assert [t.name for t in listed] == [task_b.name], "whatever the filter says"
    calls = (
        campaigns.UpdateCareTask(pb.UpdateCareTaskRequest(
            care_task=care_pb2.CareTask(name=task_a.name, title="Mine now"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=rm("rm-b")),
        campaigns.DeleteCareTask(pb.DeleteCareTaskRequest(name=task_a.name), metadata=rm("rm-b")),
        campaigns.CompleteCareTask(pb.CompleteCareTaskRequest(
            name=task_a.name, outcome=care_pb2.CARE_TASK_OUTCOME_NOT_REACHED), metadata=rm("rm-b")),
    )
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.UpdateCareTask(pb.UpdateCareTaskRequest(
            care_task=care_pb2.CareTask(name=task_b.name, assignee="rm-a"),
            update_mask=field_mask_pb2.FieldMask(paths=["assignee"])), metadata=rm("rm-b"))
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                 "ASSIGN_TO_SELF_ONLY")
    unchanged = (await campaigns.GetCareTask(pb.GetCareTaskRequest(name=task_a.name), metadata=MARKETER)).care_task
    assert unchanged == task_a


async def test_lists_run_earliest_due_first_over_pages_with_filters(campaigns, book) -> None:
    customers = await book({"c": "rm-list"})
    assignee = f"rm-{uuid.uuid4().hex[:8]}"
    made = [await create(campaigns, new_task(customers["c"], assignee, due_time=due_in(days)), MARKETER)
            for days in (5, 1, 3, 2, 4)]
    review = await create(campaigns, new_task(customers["c"], assignee, due_time=due_in(6),
                                              kind=care_pb2.CARE_TASK_KIND_SERVICE_REVIEW), MARKETER)
    pages, token = [], ""
    while True:
        page = await campaigns.ListCareTasks(pb.ListCareTasksRequest(assignee=assignee, page_size=2, page_token=token),
                                             metadata=MARKETER)
        pages.append([t.name for t in page.care_tasks])
        token = page.next_page_token
        if not token:
            break
    by_due = sorted([*made, review], key=lambda t: t.due_time.ToDatetime())
    assert [name for page in pages for name in page] == [t.name for t in by_due]
    assert [len(page) for page in pages] == [2, 2, 2]
    kinds = await campaigns.ListCareTasks(pb.ListCareTasksRequest(
        customer=customers["c"], kind=care_pb2.CARE_TASK_KIND_SERVICE_REVIEW), metadata=MARKETER)
    assert [t.name for t in kinds.care_tasks] == [review.name]
    soon = await campaigns.ListCareTasks(pb.ListCareTasksRequest(assignee=assignee, due_before=due_in(2.5)),
                                         metadata=MARKETER)
    assert [t.name for t in soon.care_tasks] == [made[1].name, made[3].name]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.ListCareTasks(pb.ListCareTasksRequest(assignee=assignee, page_size=2, page_token=token or "x"),
                                      metadata=MARKETER)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.ListCareTasks(pb.ListCareTasksRequest(
            customer="people/1", states=[care_pb2.CareTaskState.ValueType(8)],
            kind=care_pb2.CareTaskKind.ValueType(77)), metadata=MARKETER)
    assert set(field_violations(caught.value)) == {"customer"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.ListCareTasks(pb.ListCareTasksRequest(
            states=[care_pb2.CareTaskState.ValueType(8)], kind=care_pb2.CareTaskKind.ValueType(77), assignee="a b"),
            metadata=MARKETER)
    assert set(field_violations(caught.value)) == {"states[0]", "kind", "assignee"}


async def update(campaigns: Any, task: care_pb2.CareTask, paths: list[str], metadata: Any = MARKETER
                 ) -> care_pb2.CareTask:
    return (await campaigns.UpdateCareTask(pb.UpdateCareTaskRequest(
        care_task=task, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=metadata)).care_task


async def test_updates_follow_the_mask_the_etag_and_the_states(campaigns, campaign_service, book) -> None:
    customers = await book({"c": "rm-u"})
    task = await create(campaigns, new_task(customers["c"], "rm-u"), MARKETER)
    moved = await update(campaigns, care_pb2.CareTask(name=task.name, etag=task.etag, due_time=due_in(10),
                                                      title="  Birthday   call ", state=care_pb2.CARE_TASK_STATE_DONE),
                         ["due_time", "title"])
    assert (moved.title, moved.state, moved.description) == ("Birthday call", care_pb2.CARE_TASK_STATE_OPEN,
                                                             task.description)
    assert moved.etag != task.etag and moved.due_time.seconds > task.due_time.seconds
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update(campaigns, care_pb2.CareTask(name=task.name, etag=task.etag, title="Stale"), ["title"])
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    bad_requests = (
        (care_pb2.CareTask(name=task.name, state=care_pb2.CARE_TASK_STATE_DONE), ["state"], {"care_task.state"}),
        (care_pb2.CareTask(name=task.name, due_time=due_in(-2)), ["due_time"], {"care_task.due_time"}),
        (care_pb2.CareTask(name=task.name, customer="customers/other"), ["customer"], {"update_mask"}),
        (care_pb2.CareTask(name=task.name, title=""), [], {"update_mask"}),
        (care_pb2.CareTask(name="careTasks/../x", title="x"), ["title"], {"care_task.name"}),
    )
    for changes, paths, fields in bad_requests:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await update(campaigns, changes, paths)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, paths
        assert set(field_violations(caught.value)) == fields, paths
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update(campaigns, care_pb2.CareTask(name="careTasks/missing", title="x"), ["title"])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    started = await update(campaigns, care_pb2.CareTask(name=task.name, state=care_pb2.CARE_TASK_STATE_IN_PROGRESS),
                           ["state"], rm("rm-u"))
    assert started.state == care_pb2.CARE_TASK_STATE_IN_PROGRESS and not started.HasField("close_time")
    cancelled = await update(campaigns, care_pb2.CareTask(name=task.name, state=care_pb2.CARE_TASK_STATE_CANCELLED),
                             ["state"], rm("rm-u"))
    assert cancelled.state == care_pb2.CARE_TASK_STATE_CANCELLED and cancelled.HasField("close_time")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update(campaigns, care_pb2.CareTask(name=task.name, title="Too late"), ["title"])
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                 "CARE_TASK_CLOSED")
    assert await rows_about(campaign_service, "outbox_event", task.name) == 4, "created, moved, started, cancelled"
    listed = (await campaigns.ListCareTasks(pb.ListCareTasksRequest(
        customer=customers["c"], states=[care_pb2.CARE_TASK_STATE_CANCELLED]), metadata=MARKETER)).care_tasks
    assert [t.name for t in listed] == [task.name]
    assert (await campaigns.ListCareTasks(pb.ListCareTasksRequest(customer=customers["c"]),
                                          metadata=MARKETER)).care_tasks == [], "closed tasks are not listed by default"


async def test_hand_made_tasks_are_deleted_automatic_and_done_ones_are_kept(
        campaigns, campaign_service, book) -> None:
    _, runtime = campaign_service
    customers = await book({"c": "rm-d"})
    task = await create(campaigns, new_task(customers["c"], "rm-d"), MARKETER)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.DeleteCareTask(pb.DeleteCareTaskRequest(name=task.name, etag="999"), metadata=MARKETER)
    assert caught.value.code() == grpc.StatusCode.ABORTED
    await campaigns.DeleteCareTask(pb.DeleteCareTaskRequest(name=task.name, etag=task.etag), metadata=rm("rm-d"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await campaigns.GetCareTask(pb.GetCareTaskRequest(name=task.name), metadata=MARKETER)
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.NOT_FOUND, "CARE_TASK_NOT_FOUND")

    automatic = await create(campaigns, new_task(customers["c"], "rm-d"), MARKETER)
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.update(care_task).where(care_task.c.care_task_id == automatic.name.split("/")[1])
                          .values(source="triggerRules/birthday"))
    done = await create(campaigns, new_task(customers["c"], "rm-d"), MARKETER)
    await campaigns.CompleteCareTask(pb.CompleteCareTaskRequest(
        name=done.name, outcome=care_pb2.CARE_TASK_OUTCOME_NOT_REACHED), metadata=MARKETER)
    for name, reason in ((automatic.name, "CARE_TASK_AUTOMATIC"), (done.name, "CARE_TASK_CLOSED")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await campaigns.DeleteCareTask(pb.DeleteCareTaskRequest(name=name), metadata=MARKETER)
        assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.FAILED_PRECONDITION, reason)


async def complete(campaigns: Any, name: str, metadata: Any = MARKETER, **fields: Any) -> care_pb2.CareTask:
    return (await campaigns.CompleteCareTask(pb.CompleteCareTaskRequest(name=name, **fields),
                                             metadata=metadata)).care_task


async def test_completion_records_the_outcome_once(campaigns, campaign_service, book, count_rows) -> None:
    customers = await book({"c": "rm-c"})
    task = await create(campaigns, new_task(customers["c"], "rm-c"), MARKETER)
    before = await rows_about(campaign_service, "outbox_event", task.name)
    bad = (
        ({}, {"outcome"}),
        ({"outcome": care_pb2.CARE_TASK_OUTCOME_CONTACTED}, {"contact_channel"}),
        ({"outcome": care_pb2.CARE_TASK_OUTCOME_NOT_REACHED, "contact_channel": campaign_pb2.CHANNEL_SMS},
         {"contact_channel"}),
        ({"outcome": care_pb2.CARE_TASK_OUTCOME_CONTACTED, "contact_channel": campaign_pb2.CHANNEL_RM_VISIT,
          "outcome_note": "Her mobile is now 139 1234 5678", "request_id": "not-a-uuid"}, {"request_id"}),
        ({"outcome": care_pb2.CARE_TASK_OUTCOME_CONTACTED, "contact_channel": campaign_pb2.CHANNEL_RM_VISIT,
          "outcome_note": "Her mobile is now 139 1234 5678"}, {"outcome_note"}),
    )
    for fields, named in bad:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await complete(campaigns, task.name, rm("rm-c"), **fields)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert set(field_violations(caught.value)) == named, fields
    assert await rows_about(campaign_service, "outbox_event", task.name) == before
    request_id = str(uuid.uuid4())
    fields = {"outcome": care_pb2.CARE_TASK_OUTCOME_CONTACTED, "contact_channel": campaign_pb2.CHANNEL_RM_VISIT,
              "outcome_note": "Greeted at the branch.", "request_id": request_id, "etag": task.etag}
    done = await complete(campaigns, task.name, rm("rm-c"), **fields)
    assert (done.state, done.outcome, done.contact_channel, done.outcome_note) == (
        care_pb2.CARE_TASK_STATE_DONE, care_pb2.CARE_TASK_OUTCOME_CONTACTED, campaign_pb2.CHANNEL_RM_VISIT,
        "Greeted at the branch.")
    assert done.HasField("close_time")
    again = await complete(campaigns, task.name, rm("rm-c"), **fields)
    assert again == done, "a retry returns the first answer"
    assert await rows_about(campaign_service, "outbox_event", task.name) == before + 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await complete(campaigns, task.name, rm("rm-c"), outcome=care_pb2.CARE_TASK_OUTCOME_NOT_REACHED)
    assert (caught.value.code(), error_reason(caught.value)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                 "CARE_TASK_CLOSED")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await complete(campaigns, "careTasks/missing", outcome=care_pb2.CARE_TASK_OUTCOME_NOT_REACHED)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_accepted_task_with_an_offer_records_the_response(
        campaigns, campaign_service, book, running_campaign) -> None:
    _, runtime = campaign_service
    customers = await book({"c": "rm-o"})
    _, [offer] = await running_campaign()
    task = await create(campaigns, new_task(customers["c"], "rm-o", offer=offer.name,
                                            kind=care_pb2.CARE_TASK_KIND_OFFER_FOLLOW_UP), MARKETER)
    assert task.offer == offer.name
    done = await complete(campaigns, task.name, rm("rm-o"), outcome=care_pb2.CARE_TASK_OUTCOME_ACCEPTED,
                          contact_channel=campaign_pb2.CHANNEL_RM_VISIT, request_id=str(uuid.uuid4()))
    assert done.outcome == care_pb2.CARE_TASK_OUTCOME_ACCEPTED
    from crm_campaign.engagement.tables import offer_response
    async with runtime.db.unit_of_work(read_only=True) as uow:
        rows = (await uow.execute(sa.select(offer_response).where(
            offer_response.c.customer_id == customers["c"].split("/")[1]))).all()
    assert [(r.offer_id, r.channel, r.type, r.recorder, r.dispatch_id) for r in rows] == [
        (offer.offer_id, campaign_pb2.CHANNEL_RM_VISIT, engagement_pb2.RESPONSE_TYPE_ACCEPTED, "rm-o", "")]
