"""Suitability and decision audit RPCs of RiskService: proto -> arguments, one unit of work and one
service call in it, result -> proto."""

from __future__ import annotations

import grpc

from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.api import suitability_messages as messages
from crm_risk.decisions.service import DecisionAudits
from crm_risk.suitability.service import Suitability
from crmkit.auth import current_principal
from crmkit.db import Database


class SuitabilityRpcs:
    """CheckSuitability(Batch) from the customer read model; ListDecisionAudits."""

    _db: Database
    _suitability: Suitability
    _decisions: DecisionAudits

    async def CheckSuitability(self, request: pb.CheckSuitabilityRequest, context: grpc.aio.ServicerContext
                               ) -> pb.CheckSuitabilityResponse:
        async with self._db.unit_of_work() as uow:
            checked = await self._suitability.check(
                uow=uow, customer=request.customer, product_code=request.product_code,
                product_risk_level=request.product_risk_level, purpose=request.purpose, context=request.context,
                actor=current_principal())
        return pb.CheckSuitabilityResponse(result=messages.result_to_proto(checked))

    async def CheckSuitabilityBatch(self, request: pb.CheckSuitabilityBatchRequest,
                                    context: grpc.aio.ServicerContext) -> pb.CheckSuitabilityBatchResponse:
        async with self._db.unit_of_work() as uow:
            checked = await self._suitability.check_batch(
                uow=uow, customers=list(request.customers), product_code=request.product_code,
                product_risk_level=request.product_risk_level, purpose=request.purpose, context=request.context,
                actor=current_principal())
        return pb.CheckSuitabilityBatchResponse(results=[messages.result_to_proto(c) for c in checked])

    async def ListDecisionAudits(self, request: pb.ListDecisionAuditsRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.ListDecisionAuditsResponse:
        where = messages.audit_filter_from(request)
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._decisions.list(uow=uow, page_size=request.page_size, page_token=request.page_token,
                                              where=where)
        return pb.ListDecisionAuditsResponse(decision_audits=[messages.audit_to_proto(a) for a in page.items],
                                             next_page_token=page.next_page_token)
