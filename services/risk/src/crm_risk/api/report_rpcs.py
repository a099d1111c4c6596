"""Credit rating inputs and the churn and account-flow reports of RiskService: proto -> arguments,
one unit of work and one service call in it, result -> proto."""

from __future__ import annotations

import grpc

from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.api import report_messages as messages
from crm_risk.api.alert_messages import interval_from
from crm_risk.reports.service import Reports
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import purpose_of


class ReportRpcs:
    """GetCreditRatingInputs (one customer, audited), GetChurnAttributionReport and
    GetAccountFlowReport."""

    _db: Database
    _reports: Reports

    async def GetCreditRatingInputs(self, request: pb.GetCreditRatingInputsRequest,
                                    context: grpc.aio.ServicerContext) -> pb.GetCreditRatingInputsResponse:
        async with self._db.unit_of_work() as uow:
            inputs = await self._reports.credit_inputs(uow=uow, customer=request.customer,
                                                       purpose=purpose_of(request.audit), actor=current_principal())
        return pb.GetCreditRatingInputsResponse(
            inputs=messages.credit_inputs_to_proto(inputs, self._reports.currency))

    async def GetChurnAttributionReport(self, request: pb.GetChurnAttributionReportRequest,
                                        context: grpc.aio.ServicerContext) -> pb.GetChurnAttributionReportResponse:
        bad: list[FieldViolation] = []
        start, end = interval_from(request, "interval", bad)
        if bad:
            raise InvalidArgument(bad)
        async with self._db.unit_of_work(read_only=True) as uow:
            report = await self._reports.churn_report(uow=uow, start=start, end=end, branch_id=request.branch_id,
                                                      relationship_manager_id=request.relationship_manager_id)
        return pb.GetChurnAttributionReportResponse(
            report=messages.churn_report_to_proto(report, self._reports.currency))

    async def GetAccountFlowReport(self, request: pb.GetAccountFlowReportRequest,
                                   context: grpc.aio.ServicerContext) -> pb.GetAccountFlowReportResponse:
        bad: list[FieldViolation] = []
        start, end = interval_from(request, "interval", bad)
        if bad:
            raise InvalidArgument(bad)
        async with self._db.unit_of_work(read_only=True) as uow:
            report = await self._reports.flow_report(
                uow=uow, start=start, end=end, granularity=request.granularity, time_zone=request.time_zone,
                branch_ids=list(request.branch_ids), product_codes=list(request.product_codes))
        return pb.GetAccountFlowReportResponse(report=messages.flow_report_to_proto(report))
