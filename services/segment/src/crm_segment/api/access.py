"""Who may call which SegmentService RPC (deny by default: the server refuses to start with an
RPC missing here). The relationship manager's book applies on top, where customers are read."""

from __future__ import annotations

from crm.segment.v1 import segment_service_pb2
from crmkit.auth import Role

SERVICE = segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"]

ADMIN = frozenset({Role.ADMIN})
PLATFORM = frozenset({Role.ADMIN, Role.SERVICE})
# Analysts define segments and run analytics; admins may do anything.
DEFINERS = frozenset({Role.ANALYST, Role.ADMIN})
# Marketers read and preview segments to target campaigns.
READERS = DEFINERS | {Role.MARKETER}
# Oversight and other services read definitions and membership history too.
OBSERVERS = READERS | {Role.AUDITOR, Role.SERVICE}
# Front line reads a customer's classification and value while serving them.
CUSTOMER_VIEWERS = READERS | {Role.RELATIONSHIP_MANAGER, Role.CHANNEL_APP, Role.RISK_OFFICER, Role.SERVICE}

_RULES: dict[str, frozenset[Role]] = {
    # segments
    "CreateSegment": DEFINERS,
    "GetSegment": OBSERVERS,
    "ListSegments": OBSERVERS,
    "UpdateSegment": DEFINERS,
    "DeleteSegment": DEFINERS,
    "ValidateSegmentRule": READERS,
    "PreviewSegment": READERS,
    "MaterialiseSegment": DEFINERS | {Role.SERVICE},
    "ListSegmentMembers": READERS | {Role.SERVICE},
    "ListMembershipChanges": OBSERVERS,
    "ListFeatures": READERS,
    # A customer's values per clause: the front line asks why a customer is (not) targeted.
    "ExplainSegmentMembership": READERS | {Role.RELATIONSHIP_MANAGER},
    "WatchChanges": PLATFORM,
    # classifications
    "GetCustomerClassification": CUSTOMER_VIEWERS,
    "ListValueTiers": frozenset(Role),
    "UpdateValueTier": ADMIN,
    "GetClassificationThresholds": frozenset(Role),
    "UpdateClassificationThresholds": ADMIN,
    # analytics
    "StartClustering": DEFINERS,
    "GetClusteringRun": READERS,
    "ListClusters": READERS,
    "MineAssociationRules": DEFINERS,
    "ListAssociationRules": READERS,
    "FitLifetimeValueModel": DEFINERS,
    "GetLifetimeValueModel": READERS,
    "GetCustomerLifetimeValue": CUSTOMER_VIEWERS,
    # long-running operations
    "GetOperation": READERS | {Role.SERVICE},
    "ListOperations": READERS | {Role.SERVICE},
    "CancelOperation": DEFINERS,
    "WatchOperation": READERS | {Role.SERVICE},
}

ACCESS = {f"/{SERVICE.full_name}/{method}": roles for method, roles in _RULES.items()}
