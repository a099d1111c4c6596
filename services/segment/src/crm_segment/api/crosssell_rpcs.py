"""Cross-sell RPCs of SegmentService: proto -> arguments, one service call, result -> proto.
MineAssociationRules launches its run once its unit of work has committed
(`crmkit.operations.Started`)."""

from __future__ import annotations

import grpc

from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api import crosssell_messages
from crm_segment.crosssell.service import RUN_OR_LATEST, CrossSell
from crm_segment.segments.rules import SEGMENT_NAME
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id


class CrossSellRpcs:
    """Mine association rules and page through them."""

    _db: Database
    _crosssell: CrossSell

    async def MineAssociationRules(self, request: pb.MineAssociationRulesRequest,
                                   context: grpc.aio.ServicerContext) -> pb.MineAssociationRulesResponse:
        population = SEGMENT_NAME.parse_one(request.population_segment, "population_segment") \
            if request.population_segment else ""
        async with self._db.unit_of_work() as uow:
            started, run_name = await self._crosssell.start(
                uow=uow, min_support=request.min_support, min_confidence=request.min_confidence,
                min_lift=request.min_lift, max_rule_size=request.max_rule_size, max_rules=request.max_rules,
                population_segment_id=population, request_id=parse_request_id(request.request_id), request=request,
                actor=current_principal())
        started.launch()
        return pb.MineAssociationRulesResponse(operation=started.operation, association_run=run_name)

    async def ListAssociationRules(self, request: pb.ListAssociationRulesRequest,
                                   context: grpc.aio.ServicerContext) -> pb.ListAssociationRulesResponse:
        run, page = await self._crosssell.list_rules(
            run_id=RUN_OR_LATEST.parse_one(request.parent, "parent", required=True),
            held_items=list(request.held_items), consequent_item=request.consequent_item, min_lift=request.min_lift,
            min_confidence=request.min_confidence, order=request.order_by, page_size=request.page_size,
            page_token=request.page_token)
        return pb.ListAssociationRulesResponse(
            rules=[crosssell_messages.rule_to_proto(run.run_id, r) for r in page.items],
            next_page_token=page.next_page_token, association_run=crosssell_messages.run_to_proto(run))
