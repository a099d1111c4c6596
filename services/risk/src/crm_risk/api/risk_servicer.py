"""RiskService servicer: proto -> arguments, one unit of work and one service call in it, result -> proto.

The churn model registry's RPCs are in churn_model_rpcs.py, scoring's in scoring_rpcs.py, the alert
workflow's in alert_rpcs.py, suitability and the decision audit in suitability_rpcs.py, the
operations' in operation_rpcs.py, credit rating inputs and the churn and account-flow reports' in
report_rpcs.py.
Every RPC of the contract is served; each has its rule in access.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crm_risk.alerting.service import Alerts
from crm_risk.alerts.service import AlertRules
from crm_risk.api import alert_rule_messages
from crm_risk.api.alert_rpcs import AlertRpcs
from crm_risk.api.churn_model_rpcs import ChurnModelRpcs
from crm_risk.api.operation_rpcs import OperationRpcs
from crm_risk.api.report_rpcs import ReportRpcs
from crm_risk.api.scoring_rpcs import ScoringRpcs
from crm_risk.api.suitability_rpcs import SuitabilityRpcs
from crm_risk.decisions.service import DecisionAudits
from crm_risk.early_warning.service import EarlyWarnings
from crm_risk.registry.service import ChurnRegistry
from crm_risk.reports.service import Reports
from crm_risk.scoring.batch import BatchScoring
from crm_risk.scoring.service import Scoring
from crm_risk.suitability.service import Suitability
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.operations import Operations
from crmkit.outbox import ChangeFeed


class RiskServicer(ChurnModelRpcs, ScoringRpcs, AlertRpcs, SuitabilityRpcs, OperationRpcs, ReportRpcs,
                   risk_service_pb2_grpc.RiskServiceServicer):
    def __init__(self, *, db: Database, alert_rules: AlertRules, feed: ChangeFeed, registry: ChurnRegistry,
                 operations: Operations, alerts: Alerts, decisions: DecisionAudits, suitability: Suitability,
                 scoring: Scoring, early_warnings: EarlyWarnings, batch_scoring: BatchScoring,
                 reports: Reports) -> None:
        self._db = db
        self._alert_rules = alert_rules
        self._feed = feed
        self._registry = registry
        self._operations = operations
        self._alerts = alerts
        self._decisions = decisions
        self._suitability = suitability
        self._scoring = scoring
        self._early_warnings = early_warnings
        self._batch_scoring = batch_scoring
        self._reports = reports

    async def CreateAlertRule(self, request: pb.CreateAlertRuleRequest, context: grpc.aio.ServicerContext
                              ) -> pb.CreateAlertRuleResponse:
        async with self._db.unit_of_work() as uow:
            rule = await self._alert_rules.create(uow=uow, rule=alert_rule_messages.to_domain(request.alert_rule),
                                                  request_id=request.request_id, request=request,
                                                  actor=current_principal())
        return pb.CreateAlertRuleResponse(alert_rule=alert_rule_messages.to_proto(rule))

    async def GetAlertRule(self, request: pb.GetAlertRuleRequest, context: grpc.aio.ServicerContext
                           ) -> pb.GetAlertRuleResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            rule = await self._alert_rules.get(uow=uow, name=request.name)
        return pb.GetAlertRuleResponse(alert_rule=alert_rule_messages.to_proto(rule))

    async def ListAlertRules(self, request: pb.ListAlertRulesRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListAlertRulesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._alert_rules.list(uow=uow, page_size=request.page_size, page_token=request.page_token,
                                                kind=request.kind, enabled_only=request.enabled_only)
        return pb.ListAlertRulesResponse(alert_rules=[alert_rule_messages.to_proto(r) for r in page.items],
                                         next_page_token=page.next_page_token)

    async def UpdateAlertRule(self, request: pb.UpdateAlertRuleRequest, context: grpc.aio.ServicerContext
                              ) -> pb.UpdateAlertRuleResponse:
        async with self._db.unit_of_work() as uow:
            rule = await self._alert_rules.update(
                uow=uow, name=request.alert_rule.name, changes=alert_rule_messages.to_domain(request.alert_rule),
                paths=list(request.update_mask.paths), etag=request.alert_rule.etag, actor=current_principal())
        return pb.UpdateAlertRuleResponse(alert_rule=alert_rule_messages.to_proto(rule))

    async def DeleteAlertRule(self, request: pb.DeleteAlertRuleRequest, context: grpc.aio.ServicerContext
                              ) -> pb.DeleteAlertRuleResponse:
        async with self._db.unit_of_work() as uow:
            await self._alert_rules.delete(uow=uow, name=request.name, etag=request.etag, actor=current_principal())
        return pb.DeleteAlertRuleResponse()

    async def WatchChanges(self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.WatchChangesResponse]:
        async for events in self._feed.stream(after_cursor=request.after_cursor,
                                              resource_types=list(request.resource_types)):
            yield pb.WatchChangesResponse(events=events)
