"""The ProfileService servicer, composed of one mixin per sub-domain (59 RPCs in all).

Each mixin maps its RPCs' protos to arguments, awaits one service call and maps the result
back; it declares the collaborators it reads as typed class attributes (`_customers:
Customers`), and the constructor here takes each of them by name and assigns it. Together the mixins
serve every RPC of the contract (tests/test_contracts.py checks it).
"""

from __future__ import annotations

from crm.profile.v1 import profile_service_pb2_grpc
from crm_profile.api.attribute_rpcs import AttributeRpcs
from crm_profile.api.consent_rpcs import ConsentRpcs
from crm_profile.api.customer_rpcs import CustomerRpcs
from crm_profile.api.event_rpcs import EventRpcs
from crm_profile.api.feature_rpcs import FeatureRpcs
from crm_profile.api.history_rpcs import HistoryRpcs
from crm_profile.api.holding_rpcs import HoldingRpcs
from crm_profile.api.identity_rpcs import IdentityRpcs
from crm_profile.api.import_rpcs import ImportRpcs
from crm_profile.api.operation_rpcs import OperationRpcs
from crm_profile.api.privacy_rpcs import PrivacyRpcs
from crm_profile.api.quality_rpcs import QualityRpcs
from crm_profile.api.relationship_rpcs import RelationshipRpcs
from crm_profile.attributes.service import AttributeCatalogue
from crm_profile.consents.service import Consents
from crm_profile.customers.service import Customers
from crm_profile.events.service import Events
from crm_profile.features.service import Features
from crm_profile.history.service import FieldHistory
from crm_profile.holdings.service import Holdings
from crm_profile.identity.merging import Merges
from crm_profile.identity.service import Identity
from crm_profile.imports.service import Imports
from crm_profile.privacy.audit_log.service import AuditLog
from crm_profile.privacy.data_subject.service import DataSubjectRequests
from crm_profile.privacy.key_rotation.service import KeyRotation
from crm_profile.privacy.retention.service import Retention
from crm_profile.quality.service import QualityReports
from crm_profile.relationships.service import Relationships
from crmkit.db import Database
from crmkit.operations import Operations
from crmkit.outbox import ChangeFeed


class ProfileServicer(CustomerRpcs, AttributeRpcs, HistoryRpcs, QualityRpcs, HoldingRpcs, EventRpcs,
                      ConsentRpcs, IdentityRpcs, RelationshipRpcs, ImportRpcs, OperationRpcs, FeatureRpcs,
                      PrivacyRpcs, profile_service_pb2_grpc.ProfileServiceServicer):
    def __init__(self, *, db: Database, feed: ChangeFeed, operations: Operations, customers: Customers,
                 attribute_catalogue: AttributeCatalogue, history: FieldHistory, quality: QualityReports,
                 holdings: Holdings, events: Events, consents: Consents, identity: Identity, merges: Merges,
                 relationships: Relationships, imports: Imports, features: Features,
                 data_subject_requests: DataSubjectRequests, key_rotation: KeyRotation, audit_log: AuditLog,
                 retention: Retention) -> None:
        self._db = db
        self._feed = feed
        self._operations = operations
        self._customers = customers
        self._attribute_catalogue = attribute_catalogue
        self._history = history
        self._quality = quality
        self._holdings = holdings
        self._events = events
        self._consents = consents
        self._identity = identity
        self._merges = merges
        self._relationships = relationships
        self._imports = imports
        self._features = features
        self._data_subject_requests = data_subject_requests
        self._key_rotation = key_rotation
        self._audit_log = audit_log
        self._retention = retention
