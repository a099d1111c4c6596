"""Scoring RPCs of RiskService: proto -> arguments, one unit of work and one service call in it,
result -> proto."""

from __future__ import annotations

import grpc

from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.api import scoring_messages as messages
from crm_risk.api.alert_messages import CUSTOMER_NAME
from crm_risk.early_warning.model import WarningFilter
from crm_risk.early_warning.service import EarlyWarnings
from crm_risk.scoring.batch import BatchScoring
from crm_risk.scoring.service import Scoring
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.resources import purpose_of


class ScoringRpcs:
    """ScoreCustomer (one customer now, with drivers), ListEarlyWarnings and GetChurnScore (the stored
    current score)."""

    _db: Database
    _scoring: Scoring
    _batch_scoring: BatchScoring
    _early_warnings: EarlyWarnings

    async def ScoreCustomer(self, request: pb.ScoreCustomerRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ScoreCustomerResponse:
        async with self._db.unit_of_work() as uow:
            score = await self._scoring.score_one(
                uow=uow, customer=request.customer, model=request.model, max_drivers=request.max_drivers,
                write_back=request.write_back, purpose=purpose_of(request.audit), request_id=request.request_id,
                message=request, actor=current_principal())
        return pb.ScoreCustomerResponse(score=messages.to_proto(score))

    async def ScoreCustomers(self, request: pb.ScoreCustomersRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ScoreCustomersResponse:
        async with self._db.unit_of_work() as uow:
            started = await self._batch_scoring.start(
                uow=uow, customers=list(request.customers), model=request.model,
                relationship_manager_id=request.relationship_manager_id, branch_id=request.branch_id,
                dry_run=request.dry_run, request_id=request.request_id, message=request, actor=current_principal())
        started.launch()
        return pb.ScoreCustomersResponse(operation=started.operation)

    async def ListEarlyWarnings(self, request: pb.ListEarlyWarningsRequest, context: grpc.aio.ServicerContext
                                ) -> pb.ListEarlyWarningsResponse:
        where = WarningFilter(relationship_manager_id=request.relationship_manager_id, branch_id=request.branch_id,
                              min_risk_band=request.min_risk_band, reason_kinds=tuple(request.reason_kinds))
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._early_warnings.list(uow=uow, page_size=request.page_size,
                                                   page_token=request.page_token, where=where,
                                                   actor=current_principal())
        return pb.ListEarlyWarningsResponse(early_warnings=[messages.warning_to_proto(w) for w in page.items],
                                            next_page_token=page.next_page_token)

    async def GetChurnScore(self, request: pb.GetChurnScoreRequest, context: grpc.aio.ServicerContext
                            ) -> pb.GetChurnScoreResponse:
        customer_id = CUSTOMER_NAME.parse_one(request.customer, "customer", required=True)
        async with self._db.unit_of_work(read_only=True) as uow:
            score = await self._scoring.current(uow=uow, customer_id=customer_id, actor=current_principal())
        return pb.GetChurnScoreResponse(score=messages.to_proto(score))
