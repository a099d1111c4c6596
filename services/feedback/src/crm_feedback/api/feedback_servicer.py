"""FeedbackService servicer: proto -> arguments, one unit of work and one service call in it, result -> proto.

Text classification RPCs are in classification_rpcs.py, the operations' in operation_rpcs.py.
Every RPC of the contract is served (tests/test_contracts.py checks it); each has its rule in
access.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.feedback.v1 import complaint_pb2, feedback_service_pb2_grpc
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.api import complaint_messages, kpi_messages, sla_messages, survey_messages
from crm_feedback.api.classification_rpcs import ClassificationRpcs
from crm_feedback.api.operation_rpcs import OperationRpcs
from crm_feedback.classification.service import TextClassifiers
from crm_feedback.complaints.service import Complaints
from crm_feedback.kpis.service import FeedbackKpis
from crm_feedback.sla.breaches import SlaBreaches
from crm_feedback.sla.service import SlaPolicies
from crm_feedback.surveys.service import Surveys
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.operations import Operations
from crmkit.outbox import ChangeFeed
from crmkit.resources import purpose_of


class FeedbackServicer(ClassificationRpcs, OperationRpcs, feedback_service_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, *, db: Database, complaints: Complaints, sla_policies: SlaPolicies, sla_breaches: SlaBreaches,
                 surveys: Surveys, kpis: FeedbackKpis, feed: ChangeFeed, classifiers: TextClassifiers,
                 operations: Operations) -> None:
        self._db = db
        self._kpis = kpis
        self._surveys = surveys
        self._complaints = complaints
        self._sla_policies = sla_policies
        self._sla_breaches = sla_breaches
        self._feed = feed
        self._classifiers = classifiers
        self._operations = operations

    async def CreateSurvey(self, request: pb.CreateSurveyRequest, context: grpc.aio.ServicerContext
                           ) -> pb.CreateSurveyResponse:
        async with self._db.unit_of_work() as uow:
            survey = await self._surveys.create(
                uow=uow, survey=survey_messages.survey_to_domain(request.survey),
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.CreateSurveyResponse(survey=survey_messages.survey_to_proto(survey))

    async def GetSurvey(self, request: pb.GetSurveyRequest, context: grpc.aio.ServicerContext
                        ) -> pb.GetSurveyResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            survey = await self._surveys.get(uow=uow, name=request.name)
        return pb.GetSurveyResponse(survey=survey_messages.survey_to_proto(survey))

    async def ListSurveys(self, request: pb.ListSurveysRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ListSurveysResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._surveys.list(uow=uow, query=survey_messages.survey_filter_from(request),
                                            page_size=request.page_size, page_token=request.page_token)
        return pb.ListSurveysResponse(surveys=[survey_messages.survey_to_proto(s) for s in page.items],
                                      next_page_token=page.next_page_token)

    async def UpdateSurvey(self, request: pb.UpdateSurveyRequest, context: grpc.aio.ServicerContext
                           ) -> pb.UpdateSurveyResponse:
        async with self._db.unit_of_work() as uow:
            survey = await self._surveys.update(
                uow=uow, name=request.survey.name, changes=survey_messages.survey_to_domain(request.survey),
                paths=list(request.update_mask.paths), etag=request.survey.etag, actor=current_principal())
        return pb.UpdateSurveyResponse(survey=survey_messages.survey_to_proto(survey))

    async def DeleteSurvey(self, request: pb.DeleteSurveyRequest, context: grpc.aio.ServicerContext
                           ) -> pb.DeleteSurveyResponse:
        async with self._db.unit_of_work() as uow:
            await self._surveys.delete(uow=uow, name=request.name, etag=request.etag, actor=current_principal())
        return pb.DeleteSurveyResponse()

    async def SubmitSurveyResponse(self, request: pb.SubmitSurveyResponseRequest, context: grpc.aio.ServicerContext
                                   ) -> pb.SubmitSurveyResponseResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._surveys.submit(
                uow=uow, parent=request.parent, draft=survey_messages.response_draft_from(request.response),
                request_id=request.request_id, request=request, actor=current_principal())
        return pb.SubmitSurveyResponseResponse(response=survey_messages.response_to_proto(view))

    async def ListSurveyResponses(self, request: pb.ListSurveyResponsesRequest, context: grpc.aio.ServicerContext
                                  ) -> pb.ListSurveyResponsesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._surveys.list_responses(
                uow=uow, parent=request.parent, query=survey_messages.response_filter_from(request),
                page_size=request.page_size, page_token=request.page_token, purpose=purpose_of(request.audit),
                actor=current_principal())
        return pb.ListSurveyResponsesResponse(responses=[survey_messages.response_to_proto(v) for v in page.items],
                                              next_page_token=page.next_page_token)

    async def FileComplaint(self, request: pb.FileComplaintRequest, context: grpc.aio.ServicerContext
                            ) -> pb.FileComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.file(uow=uow, draft=complaint_messages.draft_from(request.complaint),
                                               request_id=request.request_id, request=request,
                                               actor=current_principal())
        return pb.FileComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def GetComplaint(self, request: pb.GetComplaintRequest, context: grpc.aio.ServicerContext
                           ) -> pb.GetComplaintResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            view = await self._complaints.get(uow=uow, name=request.name, purpose=purpose_of(request.audit),
                                              actor=current_principal())
        return pb.GetComplaintResponse(complaint=complaint_messages.to_proto(
            view, full=request.view != complaint_pb2.COMPLAINT_VIEW_BASIC))

    async def ListComplaints(self, request: pb.ListComplaintsRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListComplaintsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._complaints.list(
                uow=uow, query=complaint_messages.filter_from(request), page_size=request.page_size,
                page_token=request.page_token, purpose=purpose_of(request.audit),
                actor=current_principal(),
            )
        full = request.view == complaint_pb2.COMPLAINT_VIEW_FULL
        return pb.ListComplaintsResponse(complaints=[complaint_messages.to_proto(v, full=full) for v in page.items],
                                         next_page_token=page.next_page_token)

    async def UpdateComplaint(self, request: pb.UpdateComplaintRequest, context: grpc.aio.ServicerContext
                              ) -> pb.UpdateComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.update(
                uow=uow, name=request.complaint.name, patch=complaint_messages.patch_from(request),
                etag=request.complaint.etag, request=request, actor=current_principal())
        return pb.UpdateComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def AssignComplaint(self, request: pb.AssignComplaintRequest, context: grpc.aio.ServicerContext
                              ) -> pb.AssignComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.assign(
                uow=uow, name=request.name, assignee=request.assignee, note=request.note, etag=request.etag,
                request_id=request.request_id, request=request, actor=current_principal())
        return pb.AssignComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def AcknowledgeComplaint(self, request: pb.AcknowledgeComplaintRequest,
                                   context: grpc.aio.ServicerContext) -> pb.AcknowledgeComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.acknowledge(
                uow=uow, name=request.name, response_channel=request.response_channel, note=request.note,
                etag=request.etag, request_id=request.request_id, request=request, actor=current_principal())
        return pb.AcknowledgeComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def AddComplaintNote(self, request: pb.AddComplaintNoteRequest, context: grpc.aio.ServicerContext
                               ) -> pb.AddComplaintNoteResponse:
        async with self._db.unit_of_work() as uow:
            complaint, note = await self._complaints.add_note(
                uow=uow, parent=request.parent, note=complaint_messages.note_from(request.note),
                request_id=request.request_id, request=request, actor=current_principal())
        return pb.AddComplaintNoteResponse(note=complaint_messages.note_to_proto(complaint.name, note))

    async def EscalateComplaint(self, request: pb.EscalateComplaintRequest, context: grpc.aio.ServicerContext
                                ) -> pb.EscalateComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.escalate(
                uow=uow, name=request.name, reason=request.reason, assignee=request.assignee, etag=request.etag,
                request_id=request.request_id, request=request, actor=current_principal())
        return pb.EscalateComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def ResolveComplaint(self, request: pb.ResolveComplaintRequest, context: grpc.aio.ServicerContext
                               ) -> pb.ResolveComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.resolve(
                uow=uow, name=request.name, resolution=complaint_messages.resolution_from(request.resolution),
                etag=request.etag, request_id=request.request_id, request=request, actor=current_principal())
        return pb.ResolveComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def CloseComplaint(self, request: pb.CloseComplaintRequest, context: grpc.aio.ServicerContext
                             ) -> pb.CloseComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.close(
                uow=uow, name=request.name, reason=request.reason, duplicate_of=request.duplicate_of,
                note=request.note, etag=request.etag, request_id=request.request_id, request=request,
                actor=current_principal())
        return pb.CloseComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def ReopenComplaint(self, request: pb.ReopenComplaintRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ReopenComplaintResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._complaints.reopen(
                uow=uow, name=request.name, reason=request.reason, etag=request.etag,
                request_id=request.request_id, request=request, actor=current_principal())
        return pb.ReopenComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def CreateSlaPolicy(self, request: pb.CreateSlaPolicyRequest, context: grpc.aio.ServicerContext
                              ) -> pb.CreateSlaPolicyResponse:
        async with self._db.unit_of_work() as uow:
            policy = await self._sla_policies.create(
                uow=uow, policy=sla_messages.to_domain(request.sla_policy),
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.CreateSlaPolicyResponse(sla_policy=sla_messages.to_proto(policy))

    async def GetSlaPolicy(self, request: pb.GetSlaPolicyRequest, context: grpc.aio.ServicerContext
                           ) -> pb.GetSlaPolicyResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            policy = await self._sla_policies.get(uow=uow, name=request.name)
        return pb.GetSlaPolicyResponse(sla_policy=sla_messages.to_proto(policy))

    async def ListSlaPolicies(self, request: pb.ListSlaPoliciesRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ListSlaPoliciesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._sla_policies.list(
                uow=uow, category=request.category, priority=request.priority,
                include_wildcards=request.include_wildcards, page_size=request.page_size,
                page_token=request.page_token)
        return pb.ListSlaPoliciesResponse(sla_policies=[sla_messages.to_proto(p) for p in page.items],
                                          next_page_token=page.next_page_token)

    async def UpdateSlaPolicy(self, request: pb.UpdateSlaPolicyRequest, context: grpc.aio.ServicerContext
                              ) -> pb.UpdateSlaPolicyResponse:
        async with self._db.unit_of_work() as uow:
            policy = await self._sla_policies.update(
                uow=uow, name=request.sla_policy.name, changes=sla_messages.to_domain(request.sla_policy),
                paths=list(request.update_mask.paths), etag=request.sla_policy.etag, actor=current_principal())
        return pb.UpdateSlaPolicyResponse(sla_policy=sla_messages.to_proto(policy))

    async def DeleteSlaPolicy(self, request: pb.DeleteSlaPolicyRequest, context: grpc.aio.ServicerContext
                              ) -> pb.DeleteSlaPolicyResponse:
        async with self._db.unit_of_work() as uow:
            await self._sla_policies.delete(uow=uow, name=request.name, etag=request.etag, actor=current_principal())
        return pb.DeleteSlaPolicyResponse()

    async def ListSlaBreaches(self, request: pb.ListSlaBreachesRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ListSlaBreachesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._sla_breaches.list(uow=uow, query=sla_messages.breach_filter_from(request),
                                                 page_size=request.page_size, page_token=request.page_token,
                                                 actor=current_principal())
        return pb.ListSlaBreachesResponse(sla_breaches=[sla_messages.breach_to_proto(b) for b in page.items],
                                          next_page_token=page.next_page_token)

    async def GetSlaBreachReport(self, request: pb.GetSlaBreachReportRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.GetSlaBreachReportResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            report = await self._sla_breaches.report(uow=uow, query=sla_messages.report_filter_from(request),
                                                     actor=current_principal())
        return pb.GetSlaBreachReportResponse(report=sla_messages.report_to_proto(report))

    async def GetFeedbackKpis(self, request: pb.GetFeedbackKpisRequest, context: grpc.aio.ServicerContext
                              ) -> pb.GetFeedbackKpisResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            report = await self._kpis.compute(uow=uow, query=kpi_messages.query_from(request))
        return kpi_messages.response_of(report, group_by=request.group_by)

    async def WatchChanges(self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.WatchChangesResponse]:
        async for events in self._feed.stream(after_cursor=request.after_cursor,
                                              resource_types=list(request.resource_types)):
            yield pb.WatchChangesResponse(events=events)
