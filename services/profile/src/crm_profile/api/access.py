"""Who may call which ProfileService RPC (deny by default: the server refuses to start with an
RPC missing here). Masking by role and the relationship manager's book apply on top."""

from __future__ import annotations

from crm.profile.v1 import profile_service_pb2
from crmkit.auth import Role

SERVICE = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"]

ADMIN = frozenset({Role.ADMIN})
PLATFORM = frozenset({Role.ADMIN, Role.SERVICE})
FRONT_LINE = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
CUSTOMER_READERS = frozenset(Role) - {Role.SERVICE}
BOOK_READERS = CUSTOMER_READERS - {Role.CHANNEL_APP}
OVERSIGHT = frozenset({Role.AUDITOR, Role.ADMIN})
STEWARDS = frozenset({Role.ADMIN, Role.ANALYST})

_RULES: dict[str, frozenset[Role]] = {
    # customers
    "CreateCustomer": FRONT_LINE,
    "GetCustomer": frozenset(Role),
    "ListCustomers": BOOK_READERS | {Role.SERVICE},
    "UpdateCustomer": FRONT_LINE,
    "DeleteCustomer": ADMIN,
    "SetCustomerAttributes": FRONT_LINE | {Role.SERVICE},
    "LookupCustomer": CUSTOMER_READERS,
    "WatchChanges": PLATFORM,
    # attribute catalogue
    "CreateAttributeDefinition": ADMIN,
    "GetAttributeDefinition": frozenset(Role),
    "ListAttributeDefinitions": frozenset(Role),
    "UpdateAttributeDefinition": ADMIN,
    "DeleteAttributeDefinition": ADMIN,
    # holdings and events (core banking and channels feed them)
    "CreateHolding": PLATFORM,
    "GetHolding": frozenset(Role),
    "ListHoldings": frozenset(Role),
    "UpdateHolding": PLATFORM,
    "DeleteHolding": PLATFORM,
    "IngestEvents": PLATFORM | {Role.CHANNEL_APP},
    "ListCustomerEvents": CUSTOMER_READERS,
    # bulk import and long-running operations
    "UploadImportFile": PLATFORM,
    "ImportCustomers": PLATFORM,
    "GetOperation": PLATFORM | {Role.ANALYST},
    "ListOperations": PLATFORM | {Role.ANALYST},
    "CancelOperation": PLATFORM,
    "WatchOperation": PLATFORM | {Role.ANALYST},
    # consent and contact preferences: checked before any marketing contact
    "RecordConsent": FRONT_LINE,
    "ListConsents": frozenset(Role),
    "ListConsentHistory": CUSTOMER_READERS,
    "GetContactPreferences": frozenset(Role),
    "UpdateContactPreferences": FRONT_LINE,
    # identity resolution: data stewards
    "CreateMatchRule": ADMIN,
    "GetMatchRule": STEWARDS,
    "ListMatchRules": STEWARDS,
    "UpdateMatchRule": ADMIN,
    "DeleteMatchRule": ADMIN,
    "FindMatches": STEWARDS,
    "ListMatchCandidates": STEWARDS,
    "DismissMatchCandidate": ADMIN,
    "MergeCustomers": ADMIN,
    "UnmergeCustomers": ADMIN,
    "ListMerges": STEWARDS | {Role.AUDITOR},
    # households and related parties
    "CreateRelationship": FRONT_LINE,
    "ListRelationships": CUSTOMER_READERS,
    "DeleteRelationship": FRONT_LINE,
    # history, freshness, quality, features
    "ListFieldChanges": frozenset({Role.RELATIONSHIP_MANAGER, Role.RISK_OFFICER}) | OVERSIGHT,
    "ListStaleFields": FRONT_LINE,
    "ConfirmFields": FRONT_LINE,
    "GetDataQualityReport": STEWARDS | {Role.AUDITOR},
    "GetCustomerFeatures": frozenset(Role),
    "RecomputeFeatures": PLATFORM,
    # privacy
    "EraseCustomer": ADMIN,
    "ExportCustomerData": ADMIN,
    "RotateEncryptionKey": ADMIN,
    "ListAuditRecords": OVERSIGHT,
    "VerifyAuditChain": OVERSIGHT,
    "ListRetentionPolicies": OVERSIGHT,
    "UpdateRetentionPolicy": ADMIN,
    "RunRetentionPurge": PLATFORM,
}

ACCESS = {f"/{SERVICE.full_name}/{method}": roles for method, roles in _RULES.items()}
