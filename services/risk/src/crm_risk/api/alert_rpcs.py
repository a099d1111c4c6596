"""Alert workflow RPCs of RiskService: proto -> arguments, one unit of work and one service call in
it, result -> proto (with the breach judged at the service clock's "now")."""

from __future__ import annotations

import grpc

from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.alerting.service import Alerts
from crm_risk.api import alert_messages as messages
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.idempotency import parse_request_id


class AlertRpcs:
    """List, read and work alerts; the response report."""

    _db: Database
    _alerts: Alerts

    async def ListAlerts(self, request: pb.ListAlertsRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ListAlertsResponse:
        where = messages.filter_from(request)
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._alerts.list(uow=uow, page_size=request.page_size, page_token=request.page_token,
                                           where=where, order_by=request.order_by, actor=current_principal())
        now = self._alerts.now()
        return pb.ListAlertsResponse(alerts=[messages.to_proto(a, now) for a in page.items],
                                     next_page_token=page.next_page_token)

    async def GetAlert(self, request: pb.GetAlertRequest, context: grpc.aio.ServicerContext) -> pb.GetAlertResponse:
        alert_id = messages.alert_id_of(request.name)
        async with self._db.unit_of_work(read_only=True) as uow:
            alert = await self._alerts.get(uow=uow, alert_id=alert_id, actor=current_principal())
        return pb.GetAlertResponse(alert=messages.to_proto(alert, self._alerts.now()))

    async def AcknowledgeAlert(self, request: pb.AcknowledgeAlertRequest, context: grpc.aio.ServicerContext
                               ) -> pb.AcknowledgeAlertResponse:
        alert_id = messages.alert_id_of(request.name)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            alert = await self._alerts.acknowledge(uow=uow, alert_id=alert_id, etag=request.etag,
                                                   request_id=request_id, message=request, actor=current_principal())
        return pb.AcknowledgeAlertResponse(alert=messages.to_proto(alert, self._alerts.now()))

    async def AssignAlert(self, request: pb.AssignAlertRequest, context: grpc.aio.ServicerContext
                          ) -> pb.AssignAlertResponse:
        alert_id = messages.alert_id_of(request.name)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            alert = await self._alerts.assign(uow=uow, alert_id=alert_id, assignee=request.assignee,
                                              etag=request.etag, request_id=request_id, message=request,
                                              actor=current_principal())
        return pb.AssignAlertResponse(alert=messages.to_proto(alert, self._alerts.now()))

    async def ResolveAlert(self, request: pb.ResolveAlertRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ResolveAlertResponse:
        alert_id = messages.alert_id_of(request.name)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            alert = await self._alerts.resolve(uow=uow, alert_id=alert_id, outcome=request.outcome, note=request.note,
                                               etag=request.etag, request_id=request_id, message=request,
                                               actor=current_principal())
        return pb.ResolveAlertResponse(alert=messages.to_proto(alert, self._alerts.now()))

    async def DismissAlert(self, request: pb.DismissAlertRequest, context: grpc.aio.ServicerContext
                           ) -> pb.DismissAlertResponse:
        alert_id = messages.alert_id_of(request.name)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            alert = await self._alerts.dismiss(uow=uow, alert_id=alert_id, reason=request.reason, note=request.note,
                                               etag=request.etag, request_id=request_id, message=request,
                                               actor=current_principal())
        return pb.DismissAlertResponse(alert=messages.to_proto(alert, self._alerts.now()))

    async def GetAlertResponseReport(self, request: pb.GetAlertResponseReportRequest,
                                     context: grpc.aio.ServicerContext) -> pb.GetAlertResponseReportResponse:
        bad: list[FieldViolation] = []
        start, end = messages.interval_from(request, "interval", bad)
        if bad:
            raise InvalidArgument(bad)
        async with self._db.unit_of_work(read_only=True) as uow:
            report = await self._alerts.response_report(uow=uow, start=start, end=end, kinds=tuple(request.kinds),
                                                        branch_id=request.branch_id)
        return pb.GetAlertResponseReportResponse(report=messages.report_to_proto(report))
