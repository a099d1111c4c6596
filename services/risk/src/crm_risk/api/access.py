"""Who may call which RiskService RPC (deny by default: the server refuses to start with an RPC
missing here). The relationship manager's book applies on top where the contract says so."""

from __future__ import annotations

from crm.risk.v1 import risk_service_pb2
from crmkit.auth import Role

SERVICE = risk_service_pb2.DESCRIPTOR.services_by_name["RiskService"]

ADMIN = frozenset({Role.ADMIN})
PLATFORM = frozenset({Role.ADMIN, Role.SERVICE})
OFFICERS = frozenset({Role.RISK_OFFICER, Role.ADMIN})
# Officers plus the managers who act on early warnings for their own book.
FRONT_LINE_RISK = OFFICERS | {Role.RELATIONSHIP_MANAGER}
MODEL_READERS = OFFICERS | {Role.ANALYST, Role.AUDITOR}
REPORT_READERS = OFFICERS | {Role.ANALYST}
# Whoever decides whether to offer or sell a product: marketers, channels, the campaign service.
SUITABILITY_CHECKERS = frozenset({Role.MARKETER, Role.CHANNEL_APP, Role.SERVICE, Role.ADMIN})

_RULES: dict[str, frozenset[Role]] = {
    # churn models and their registry (four-eyes promotion is checked by the service)
    "TrainChurnModel": OFFICERS,
    "GetChurnModel": MODEL_READERS,
    "ListChurnModels": MODEL_READERS,
    "PromoteChurnModel": OFFICERS,
    "RetireChurnModel": OFFICERS,
    # scoring and early warning
    "ScoreCustomers": OFFICERS,
    "ScoreCustomer": FRONT_LINE_RISK,
    "ListEarlyWarnings": FRONT_LINE_RISK,
    # the stored current score: the customer 360 (channels through the gateway, managers)
    "GetChurnScore": FRONT_LINE_RISK | {Role.CHANNEL_APP, Role.SERVICE},
    # alert rules: officers manage them, auditors review them
    "CreateAlertRule": OFFICERS,
    "GetAlertRule": OFFICERS | {Role.AUDITOR},
    "ListAlertRules": OFFICERS | {Role.AUDITOR},
    "UpdateAlertRule": OFFICERS,
    "DeleteAlertRule": OFFICERS,
    # the alert workflow
    "ListAlerts": FRONT_LINE_RISK,
    "GetAlert": FRONT_LINE_RISK,
    "AcknowledgeAlert": OFFICERS,
    "AssignAlert": OFFICERS,
    "ResolveAlert": OFFICERS,
    "DismissAlert": OFFICERS,
    "GetAlertResponseReport": REPORT_READERS,
    # suitability
    "CheckSuitability": SUITABILITY_CHECKERS,
    "CheckSuitabilityBatch": SUITABILITY_CHECKERS,
    # credit rating inputs and reports
    "GetCreditRatingInputs": FRONT_LINE_RISK,
    "GetChurnAttributionReport": REPORT_READERS,
    "GetAccountFlowReport": REPORT_READERS,
    # decision audit
    "ListDecisionAudits": frozenset({Role.AUDITOR, Role.ADMIN}),
    # long-running operations (training, batch scoring)
    "GetOperation": REPORT_READERS,
    "ListOperations": REPORT_READERS,
    "CancelOperation": OFFICERS,
    "WatchOperation": REPORT_READERS,
    # change feed
    "WatchChanges": PLATFORM,
}

ACCESS = {f"/{SERVICE.full_name}/{method}": roles for method, roles in _RULES.items()}
