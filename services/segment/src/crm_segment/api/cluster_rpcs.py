"""Clustering RPCs of SegmentService: proto -> arguments, one service call, result -> proto.
StartClustering launches its run once its unit of work has committed
(`crmkit.operations.Started`)."""

from __future__ import annotations

import grpc

from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api import cluster_messages
from crm_segment.clusters.service import RUN_NAME, Clustering
from crm_segment.segments.rules import SEGMENT_NAME
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id


class ClusterRpcs:
    """Start a clustering run, read it and its clusters."""

    _db: Database
    _clustering: Clustering

    async def StartClustering(self, request: pb.StartClusteringRequest, context: grpc.aio.ServicerContext
                              ) -> pb.StartClusteringResponse:
        population = SEGMENT_NAME.parse_one(request.population_segment, "population_segment") \
            if request.population_segment else ""
        async with self._db.unit_of_work() as uow:
            started, run_name = await self._clustering.start(
                uow=uow, display_name=request.display_name, features=list(request.features),
                cluster_count=request.cluster_count, min_cluster_count=request.min_cluster_count,
                max_cluster_count=request.max_cluster_count, missing_values=request.missing_values,
                random_seed=request.random_seed, population_segment_id=population,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        started.launch()
        return pb.StartClusteringResponse(operation=started.operation, clustering_run=run_name)

    async def GetClusteringRun(self, request: pb.GetClusteringRunRequest, context: grpc.aio.ServicerContext
                               ) -> pb.GetClusteringRunResponse:
        run = await self._clustering.get(run_id=RUN_NAME.parse_one(request.name, required=True))
        return pb.GetClusteringRunResponse(clustering_run=cluster_messages.run_to_proto(run))

    async def ListClusters(self, request: pb.ListClustersRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ListClustersResponse:
        run, page = await self._clustering.list_clusters(
            run_id=RUN_NAME.parse_one(request.parent, "parent", required=True), page_size=request.page_size,
            page_token=request.page_token)
        return pb.ListClustersResponse(clusters=[cluster_messages.cluster_to_proto(run.run_id, c) for c in page.items],
                                       next_page_token=page.next_page_token)
