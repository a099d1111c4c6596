"""Who may call which FeedbackService RPC (deny by default: the server refuses to start with an
RPC missing here). Masking by role and the relationship manager's cases apply on top (see
complaints/rules.py)."""

from __future__ import annotations

from crm.feedback.v1 import feedback_service_pb2
from crmkit.auth import Role

SERVICE = feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"]

ADMIN = frozenset({Role.ADMIN})
PLATFORM = frozenset({Role.ADMIN, Role.SERVICE})
# People who read complaints and feedback across the bank (analysts see personal data masked).
READERS = frozenset({Role.RELATIONSHIP_MANAGER, Role.ANALYST, Role.AUDITOR, Role.ADMIN})
# People who work complaints: managers their own book, admins every complaint.
WORKERS = frozenset({Role.RELATIONSHIP_MANAGER, Role.ADMIN})
STAFF_AND_CHANNELS = frozenset(Role) - {Role.SERVICE}
# Who reads the text classifier registry and its training operations.
MODEL_READERS = frozenset({Role.ANALYST, Role.AUDITOR, Role.ADMIN})

_RULES: dict[str, frozenset[Role]] = {
    # surveys: admins design them, channels show them and submit the answers
    "CreateSurvey": ADMIN,
    "GetSurvey": STAFF_AND_CHANNELS,
    "ListSurveys": STAFF_AND_CHANNELS,
    "UpdateSurvey": ADMIN,
    "DeleteSurvey": ADMIN,
    "SubmitSurveyResponse": frozenset({Role.CHANNEL_APP, Role.ADMIN}),
    "ListSurveyResponses": READERS,
    # complaints
    "FileComplaint": frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN}),
    "GetComplaint": READERS | {Role.CHANNEL_APP},
    # Channel applications read one complaint by its reference; listing would need the end
    # user's customer in the token, which the platform's tokens do not carry yet.
    "ListComplaints": READERS,
    "UpdateComplaint": WORKERS,
    "AssignComplaint": WORKERS,
    "AcknowledgeComplaint": WORKERS,
    "AddComplaintNote": WORKERS,
    "EscalateComplaint": WORKERS,
    "ResolveComplaint": WORKERS,
    "CloseComplaint": WORKERS,
    "ReopenComplaint": WORKERS,
    # SLA policies and breaches
    "CreateSlaPolicy": ADMIN,
    "GetSlaPolicy": READERS,
    "ListSlaPolicies": READERS,
    "UpdateSlaPolicy": ADMIN,
    "DeleteSlaPolicy": ADMIN,
    "ListSlaBreaches": READERS,
    "GetSlaBreachReport": READERS,
    # text classification and KPIs
    "ClassifyText": PLATFORM,
    "GetFeedbackKpis": frozenset({Role.ANALYST, Role.AUDITOR, Role.ADMIN}),
    # change feed
    "WatchChanges": PLATFORM,
    # text classifiers: admins train them, model readers inspect them and their operations
    "TrainTextClassifier": ADMIN,
    "GetTextClassifier": MODEL_READERS,
    "ListTextClassifiers": MODEL_READERS,
    "GetOperation": MODEL_READERS,
    "ListOperations": MODEL_READERS,
    "CancelOperation": ADMIN,
    "WatchOperation": MODEL_READERS,
}

ACCESS = {f"/{SERVICE.full_name}/{method}": roles for method, roles in _RULES.items()}
