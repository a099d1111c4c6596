"""Load the synthetic bank (`synthetic_bank`) into a running platform through profile's own paths.

Customers through `demo_data.load` (CreateCustomer, idempotent per customer), then per chunk of
customers: holdings (CreateHolding) and marketing consents (RecordConsent), each with a stable
`request_id` per day (the bank is laid out from the day it is loaded) so loading the same bank
again that day changes nothing (another day: holdings already exist, consents are recorded
again with the new day's dates), and events through the
`IngestEvents` client stream in batches of 1,000 (an event id already accepted is a duplicate,
not stored again). With `file_complaints`, each customer's complaints are then filed through
feedback's `FileComplaint` (a stable `request_id` per customer, complaint and day, so a second load
replays instead of filing again), retried while feedback has not yet learnt of the customer from
profile's feed; `file_surveys` creates the demo surveys (CreateSurvey, a stable `request_id` per
survey) and submits each customer's answers (SubmitSurveyResponse, a stable `request_id` per
customer, survey and subject, so a second load on any day replays). Each chunk's mobile-app
duplicates (the same person under another id) are created after its customers, through the same
CreateCustomer path, and counted apart. Profile's feature refresher derives the features from what was loaded, and the
change feed carries all of it to segment, campaign and risk.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import TypeVar

import grpc

from crm.common.v1 import audit_pb2
from crm.feedback.v1 import complaint_pb2, feedback_service_pb2, feedback_service_pb2_grpc, survey_pb2
from crm.profile.v1 import consent_pb2, event_pb2, holding_pb2, profile_service_pb2_grpc
from crm_cli import demo_data, output
from crm_cli.synthetic_bank import BankCustomer

Reply = TypeVar("Reply")
CHUNK = 200
EVENT_BATCH = 1000
CONCURRENCY = 8
TIMEOUT_SECONDS = 30.0
REQUEST_NAMESPACE = uuid.UUID("a3c1e2f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT,
                               justification="synthetic demo bank load")


@dataclass
class BankLoadResult:
    customers: demo_data.LoadResult = field(default_factory=demo_data.LoadResult)
    duplicates: demo_data.LoadResult = field(default_factory=demo_data.LoadResult)  # mobile-app twins
    holdings: int = 0  # created, or already there (a retried create replays its first answer)
    consents: int = 0  # likewise
    events_accepted: int = 0
    events_duplicate: int = 0
    events_rejected: int = 0
    complaints_filed: int = 0
    complaints_existing: int = 0  # filed by an earlier load (the same request_id replays it)
    # (request key, complaint) of loaded customers, filed through feedback by `file_complaints`.
    pending_complaints: list[tuple[str, complaint_pb2.Complaint]] = field(default_factory=list)
    surveys: int = 0  # demo surveys created, or already there
    survey_answers_filed: int = 0
    survey_answers_existing: int = 0  # submitted by an earlier load
    # (request key, survey id, response) of loaded customers, submitted by `file_surveys`.
    pending_survey_answers: list[tuple[str, str, survey_pb2.SurveyResponse]] = field(default_factory=list)
    # (what, gRPC status name, message): ids and codes only, never personal data.
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    # The bulk path's phases in order: name -> (items, seconds), for the report and its rates.
    phases: dict[str, tuple[int, float]] = field(default_factory=dict)


def _request_id(key: str) -> str:
    return str(uuid.uuid5(REQUEST_NAMESPACE, key))


def chunks(bank: Iterable[BankCustomer], size: int) -> Iterable[list[BankCustomer]]:
    iterator = iter(bank)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Writer:
    """Profile's per-call writes of a customer's holdings and consents, at most `concurrency` in
    flight, counted into `result` (ALREADY_EXISTS counts as nothing new, other refusals as failures)."""

    def __init__(self, stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: Sequence[tuple[str, str]],
                 result: BankLoadResult, *, concurrency: int = CONCURRENCY) -> None:
        self._stub = stub
        self._metadata = metadata
        self._result = result
        self._gate = asyncio.Semaphore(concurrency)

    async def _call(self, what: str, rpc: Callable[..., Awaitable[object]], request: object) -> bool:
        async with self._gate:
            try:
                await rpc(request, metadata=self._metadata, timeout=TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                    self._result.failed.append((what, error.code().name, error.details() or ""))
                return False
        return True

    async def holding(self, who: BankCustomer, held: holding_pb2.Holding) -> None:
        request = holding_pb2.CreateHoldingRequest(parent=who.name, holding=held, audit=AUDIT,
                                                   request_id=_request_id(f"{who.as_of}/holding/{held.holding_id}"))
        created = await self._call(f"holding {held.holding_id}", self._stub.CreateHolding, request)
        self._result.holdings += created  # after the await: `x += await ...` would read x before it

    async def consents(self, who: BankCustomer) -> None:
        if who.consents:
            request = consent_pb2.RecordConsentRequest(parent=who.name, consents=who.consents, audit=AUDIT,
                                                       request_id=_request_id(f"{who.as_of}/consents/{who.name}"))
            recorded = await self._call(f"consents of {who.name}", self._stub.RecordConsent, request)
            self._result.consents += len(who.consents) * recorded


def pend_feedback(result: BankLoadResult, present: Iterable[BankCustomer]) -> None:
    """Keep the complaints and survey answers of loaded customers for `file_complaints` and
    `file_surveys`, under their stable request keys."""
    for who in present:
        result.pending_complaints += [(f"{who.as_of}/complaint/{who.name}/{n}", complaint)
                                      for n, complaint in enumerate(who.complaints)]
        result.pending_survey_answers += [(f"survey/{survey_id}/{who.name}/{answer.subject}", survey_id, answer)
                                          for survey_id, answer in who.survey_answers]


async def load(channel: grpc.aio.Channel, token: str, bank: Iterable[BankCustomer], *,
               on_customers: Callable[[int], None] | None = None) -> BankLoadResult:
    """Load every customer and what they hold, did and agreed to; `on_customers(n)` after each chunk."""
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    result = BankLoadResult()
    writer = Writer(stub, metadata, result)
    for chunk in chunks(bank, CHUNK):
        loaded = await demo_data.load(channel, token, [who.customer for who in chunk])
        result.customers.created += loaded.created
        result.customers.existing += loaded.existing
        result.customers.failed.extend(loaded.failed)
        refused = {customer_id for customer_id, _, _ in loaded.failed}
        present = [who for who in chunk if who.customer.customer_id not in refused]
        twins = await demo_data.load(channel, token, [twin for who in present for twin in who.duplicates])
        result.duplicates.created += twins.created
        result.duplicates.existing += twins.existing
        result.duplicates.failed.extend(twins.failed)
        await asyncio.gather(*(writer.holding(who, held) for who in present for held in who.holdings),
                             *(writer.consents(who) for who in present))
        await ingest(stub, metadata, [event for who in present for event in who.events], result)
        pend_feedback(result, present)
        if on_customers is not None:
            on_customers(len(chunk))
    return result


async def ingest(stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: Sequence[tuple[str, str]],
                  events: list[event_pb2.CustomerEvent], result: BankLoadResult) -> None:
    if not events:
        return

    async def batches() -> AsyncIterator[event_pb2.IngestEventsRequest]:
        for start in range(0, len(events), EVENT_BATCH):
            yield event_pb2.IngestEventsRequest(events=events[start:start + EVENT_BATCH])

    try:
        reply = await stub.IngestEvents(batches(), metadata=metadata, timeout=TIMEOUT_SECONDS * 4)
    except grpc.aio.AioRpcError as error:
        result.failed.append((f"{len(events)} events", error.code().name, error.details() or ""))
        return
    result.events_accepted += reply.accepted_count
    result.events_duplicate += reply.duplicate_count
    result.events_rejected += reply.rejected_count
    for rejection in reply.rejections[:5]:
        result.failed.append((f"event {rejection.event_id}", rejection.reason,
                              f"{rejection.field}: {rejection.description}"))


async def file_complaints(channel: grpc.aio.Channel, token: str, result: BankLoadResult, *,
                          wait_seconds: float = 120.0) -> None:
    """File the loaded customers' complaints through feedback. Feedback learns of customers from
    profile's feed: a complaint refused with CUSTOMER_NOT_FOUND is retried until `wait_seconds`."""
    stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    gate = asyncio.Semaphore(CONCURRENCY)
    started = datetime.now(UTC)
    deadline = time.monotonic() + wait_seconds

    async def file(key: str, complaint: complaint_pb2.Complaint) -> None:
        request = feedback_service_pb2.FileComplaintRequest(complaint=complaint, request_id=_request_id(key))
        try:
            reply = await _once_feedback_knows_the_customer(
                lambda: stub.FileComplaint(request, metadata=metadata, timeout=TIMEOUT_SECONDS),
                gate=gate, deadline=deadline)
        except grpc.aio.AioRpcError as error:
            result.failed.append((f"complaint of {complaint.customer}", error.code().name, error.details() or ""))
            return
        if reply.complaint.create_time.ToDatetime(tzinfo=UTC) < started:
            result.complaints_existing += 1
        else:
            result.complaints_filed += 1

    await asyncio.gather(*(file(key, complaint) for key, complaint in result.pending_complaints))


async def file_surveys(channel: grpc.aio.Channel, token: str, result: BankLoadResult,
                       surveys: Sequence[survey_pb2.Survey], *, wait_seconds: float = 120.0) -> None:
    """Create the demo surveys (one already there is fine), then submit the loaded customers'
    answers; an answer refused with CUSTOMER_NOT_FOUND is retried until `wait_seconds`, as
    complaints are."""
    stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    for survey in surveys:
        try:
            await stub.CreateSurvey(feedback_service_pb2.CreateSurveyRequest(
                survey=survey, request_id=_request_id(f"survey/{survey.survey_id}")),
                metadata=metadata, timeout=TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                result.failed.append((f"survey {survey.survey_id}", error.code().name, error.details() or ""))
                return
        result.surveys += 1
    gate = asyncio.Semaphore(CONCURRENCY)
    started = datetime.now(UTC)
    deadline = time.monotonic() + wait_seconds

    async def submit(key: str, survey_id: str, answer: survey_pb2.SurveyResponse) -> None:
        request = feedback_service_pb2.SubmitSurveyResponseRequest(parent=f"surveys/{survey_id}", response=answer,
                                                                   request_id=_request_id(key))
        try:
            reply = await _once_feedback_knows_the_customer(
                lambda: stub.SubmitSurveyResponse(request, metadata=metadata, timeout=TIMEOUT_SECONDS),
                gate=gate, deadline=deadline)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.ALREADY_EXISTS:  # answered under another key
                result.survey_answers_existing += 1
            else:
                result.failed.append((f"survey answer of {answer.customer}", error.code().name,
                                      error.details() or ""))
            return
        if reply.response.submit_time.ToDatetime(tzinfo=UTC) < started:
            result.survey_answers_existing += 1
        else:
            result.survey_answers_filed += 1

    await asyncio.gather(*(submit(key, survey_id, answer) for key, survey_id, answer in result.pending_survey_answers))


async def _once_feedback_knows_the_customer(call: Callable[[], Awaitable[Reply]], *, gate: asyncio.Semaphore,
                                            deadline: float) -> Reply:
    """`call()` under `gate`, made again every half second while feedback refuses it with
    CUSTOMER_NOT_FOUND (it learns of customers from profile's feed) until the monotonic `deadline`;
    any other refusal, or that one after the deadline, is raised."""
    while True:
        async with gate:
            try:
                return await call()
            except grpc.aio.AioRpcError as error:
                if output.error_reason(error) != "CUSTOMER_NOT_FOUND" or time.monotonic() > deadline:
                    raise
        await asyncio.sleep(0.5)
