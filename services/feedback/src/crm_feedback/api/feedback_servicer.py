"""FeedbackService servicer: proto -> arguments, one unit of work and one service call in it, result -> proto.

RPCs not overridden here are not served yet: the generated base raises NotImplementedError,
which the kit's interceptor answers with UNIMPLEMENTED. Each still has its rule in access.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.feedback.v1 import feedback_service_pb2 as pb
from crm.feedback.v1 import feedback_service_pb2_grpc
from crm_feedback.api import complaint_messages
from crm_feedback.complaints.service import Complaints
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.outbox import ChangeFeed
from crmkit.resources import purpose_of


class FeedbackServicer(feedback_service_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, *, db: Database, complaints: Complaints, feed: ChangeFeed) -> None:
        self._db = db
        self._complaints = complaints
        self._feed = feed

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
        return pb.GetComplaintResponse(complaint=complaint_messages.to_proto(view))

    async def ListComplaints(self, request: pb.ListComplaintsRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListComplaintsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._complaints.list(
                uow=uow, query=complaint_messages.filter_from(request), page_size=request.page_size,
                page_token=request.page_token, purpose=purpose_of(request.audit),
                actor=current_principal(),
            )
        return pb.ListComplaintsResponse(complaints=[complaint_messages.to_proto(v) for v in page.items],
                                         next_page_token=page.next_page_token)

    async def WatchChanges(self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.WatchChangesResponse]:
        async for events in self._feed.stream(after_cursor=request.after_cursor,
                                              resource_types=list(request.resource_types)):
            yield pb.WatchChangesResponse(events=events)
