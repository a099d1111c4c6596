"""Membership RPCs of SegmentService: proto -> arguments, one service call, result -> proto.
MaterialiseSegment launches its run once its unit of work has committed
(`crmkit.operations.Started`)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api import membership_messages
from crm_segment.membership.service import Membership
from crm_segment.segments.rules import SEGMENT_NAME
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id


class MembershipRpcs:
    """Preview, materialise, and read members and their history."""

    _db: Database
    _membership: Membership

    async def PreviewSegment(self, request: pb.PreviewSegmentRequest, context: grpc.aio.ServicerContext
                             ) -> pb.PreviewSegmentResponse:
        source = request.WhichOneof("source")
        preview = await self._membership.preview(
            rule=request.rule if source == "rule" else None,
            segment_id=SEGMENT_NAME.parse_one(request.segment, "segment") if source == "segment" else None,
            sample_size=request.sample_size)
        return membership_messages.preview_to_proto(preview)

    async def MaterialiseSegment(self, request: pb.MaterialiseSegmentRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.MaterialiseSegmentResponse:
        segment_id = SEGMENT_NAME.parse_one(request.name, required=True)
        async with self._db.unit_of_work() as uow:
            started = await self._membership.start_materialise(
                uow=uow, segment_id=segment_id, request_id=parse_request_id(request.request_id), request=request,
                actor=current_principal())
        started.launch()
        return pb.MaterialiseSegmentResponse(operation=started.operation)

    async def ListSegmentMembers(self, request: pb.ListSegmentMembersRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.ListSegmentMembersResponse:
        page, total = await self._membership.list_members(
            segment_id=SEGMENT_NAME.parse_one(request.parent, "parent", required=True), page_size=request.page_size,
            page_token=request.page_token,
            entered_after=_time(request.entered_after) if request.HasField("entered_after") else None)
        return pb.ListSegmentMembersResponse(members=[membership_messages.member_to_proto(m) for m in page.items],
                                             next_page_token=page.next_page_token, total_size=total)

    async def ListMembershipChanges(self, request: pb.ListMembershipChangesRequest,
                                    context: grpc.aio.ServicerContext) -> pb.ListMembershipChangesResponse:
        interval = request.change_interval
        page = await self._membership.list_changes(
            parent=request.parent, customer=request.customer, kind=request.kind,
            since=_time(interval.start_time) if interval.HasField("start_time") else None,
            until=_time(interval.end_time) if interval.HasField("end_time") else None,
            page_size=request.page_size, page_token=request.page_token)
        return pb.ListMembershipChangesResponse(changes=[membership_messages.change_to_proto(c) for c in page.items],
                                                next_page_token=page.next_page_token)


def _time(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)
