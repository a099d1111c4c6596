"""SegmentService servicer: proto -> arguments, one unit of work and one service call in it, result -> proto.

Every RPC of the contract is served (tests/test_contracts.py checks it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.segment.v1 import segment_service_pb2 as pb
from crm.segment.v1 import segment_service_pb2_grpc
from crm_segment.api import segment_messages
from crm_segment.api.classification_rpcs import ClassificationRpcs
from crm_segment.api.cluster_rpcs import ClusterRpcs
from crm_segment.api.crosssell_rpcs import CrossSellRpcs
from crm_segment.api.explain_rpcs import ExplainRpcs
from crm_segment.api.ltv_rpcs import LifetimeValueRpcs
from crm_segment.api.membership_rpcs import MembershipRpcs
from crm_segment.api.operation_rpcs import OperationRpcs
from crm_segment.classifications.service import Classifications
from crm_segment.clusters.service import Clustering
from crm_segment.clv.service import LifetimeValues
from crm_segment.crosssell.service import CrossSell
from crm_segment.membership.service import Membership
from crm_segment.segments.rules import SEGMENT_NAME
from crm_segment.segments.service import Segments
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.operations import Operations

# A name whose id the rules would refuse is bad input, as in every service, not a missing segment.
SEGMENT = SEGMENT_NAME


class SegmentServicer(MembershipRpcs, OperationRpcs, ExplainRpcs, ClusterRpcs, CrossSellRpcs, ClassificationRpcs,
                      LifetimeValueRpcs, segment_service_pb2_grpc.SegmentServiceServicer):
    def __init__(self, *, db: Database, segments: Segments, membership: Membership, operations: Operations,
                 clustering: Clustering, crosssell: CrossSell, classifications: Classifications,
                 lifetime_values: LifetimeValues) -> None:
        self._db = db
        self._classifications = classifications
        self._lifetime_values = lifetime_values
        self._segments = segments
        self._membership = membership
        self._operations = operations
        self._clustering = clustering
        self._crosssell = crosssell

    async def CreateSegment(self, request: pb.CreateSegmentRequest, context: grpc.aio.ServicerContext
                            ) -> pb.CreateSegmentResponse:
        async with self._db.unit_of_work() as uow:
            segment = await self._segments.create(
                uow=uow, segment=segment_messages.to_domain(request.segment),
                request_id=parse_request_id(request.request_id), request=request,
                actor=current_principal(),
            )
        return pb.CreateSegmentResponse(segment=segment_messages.to_proto(segment))

    async def GetSegment(self, request: pb.GetSegmentRequest, context: grpc.aio.ServicerContext
                         ) -> pb.GetSegmentResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            segment = await self._segments.get(uow=uow, segment_id=SEGMENT.parse_one(request.name))
        return pb.GetSegmentResponse(segment=segment_messages.to_proto(segment))

    async def ListSegments(self, request: pb.ListSegmentsRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ListSegmentsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._segments.list(
                uow=uow, page_size=request.page_size, page_token=request.page_token,
                display_name_contains=request.display_name_contains, evaluation_mode=request.evaluation_mode,
                feature=request.feature, creator=request.creator,
            )
        return pb.ListSegmentsResponse(segments=[segment_messages.to_proto(s) for s in page.items],
                                       next_page_token=page.next_page_token)

    async def UpdateSegment(self, request: pb.UpdateSegmentRequest, context: grpc.aio.ServicerContext
                            ) -> pb.UpdateSegmentResponse:
        segment_id = SEGMENT.parse_one(request.segment.name, "segment.name")
        async with self._db.unit_of_work() as uow:
            segment = await self._segments.update(
                uow=uow, changes=segment_messages.to_domain(request.segment, segment_id=segment_id),
                paths=list(request.update_mask.paths), etag=request.segment.etag, actor=current_principal(),
            )
        return pb.UpdateSegmentResponse(segment=segment_messages.to_proto(segment))

    async def DeleteSegment(self, request: pb.DeleteSegmentRequest, context: grpc.aio.ServicerContext
                            ) -> pb.DeleteSegmentResponse:
        async with self._db.unit_of_work() as uow:
            await self._segments.delete(uow=uow, segment_id=SEGMENT.parse_one(request.name), etag=request.etag,
                                        actor=current_principal())
        return pb.DeleteSegmentResponse()

    async def ValidateSegmentRule(self, request: pb.ValidateSegmentRuleRequest, context: grpc.aio.ServicerContext
                                  ) -> pb.ValidateSegmentRuleResponse:
        analysis = await self._segments.validate_rule(rule=request.rule, evaluation_mode=request.evaluation_mode)
        return segment_messages.analysis_to_proto(analysis)

    async def ListFeatures(self, request: pb.ListFeaturesRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ListFeaturesResponse:
        page = self._segments.list_features(page_size=request.page_size, page_token=request.page_token,
                                            real_time_only=request.real_time_only)
        return pb.ListFeaturesResponse(features=[segment_messages.feature_to_proto(f) for f in page.items],
                                       next_page_token=page.next_page_token)

    async def WatchChanges(self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.WatchChangesResponse]:
        async for events in self._segments.watch(after_cursor=request.after_cursor,
                                                 resource_types=list(request.resource_types),
                                                 segments=list(request.segments)):
            yield pb.WatchChangesResponse(events=events)
