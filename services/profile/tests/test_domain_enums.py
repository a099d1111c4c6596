"""Every sub-domain's enums are the contract's: same names, same numbers, so neither can drift."""

from __future__ import annotations

from enum import IntEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from crm.profile.v1 import (
    attribute_pb2,
    audit_log_pb2,
    consent_pb2,
    customer_pb2,
    data_class_pb2,
    event_pb2,
    history_pb2,
    holding_pb2,
    import_pb2,
    privacy_pb2,
    quality_pb2,
    relationship_pb2,
    retention_pb2,
)
from crm_profile.attributes import model as attributes
from crm_profile.consents import model as consents
from crm_profile.customers import model as customers
from crm_profile.events import model as events
from crm_profile.history import model as history
from crm_profile.holdings import model as holdings
from crm_profile.imports import model as imports
from crm_profile.privacy.audit_log import model as audit_log
from crm_profile.privacy.data_subject import model as data_subject
from crm_profile.privacy.key_rotation import model as key_rotation
from crm_profile.privacy.retention import model as retention
from crm_profile.quality import model as quality
from crm_profile.relationships import model as relationships

CASES = [
    (attributes.ValueType, attribute_pb2.AttributeValueType, "ATTRIBUTE_VALUE_TYPE_"),
    (attributes.DataClass, data_class_pb2.DataClass, "DATA_CLASS_"),
    (consents.ConsentPurpose, consent_pb2.ConsentPurpose, "CONSENT_PURPOSE_"),
    (consents.ContactChannel, consent_pb2.ContactChannel, "CONTACT_CHANNEL_"),
    (consents.ConsentDecision, consent_pb2.ConsentDecision, "CONSENT_DECISION_"),
    (consents.ConsentSource, consent_pb2.ConsentSource, "CONSENT_SOURCE_"),
    (consents.ConsentStatus, consent_pb2.ConsentStatus, "CONSENT_STATUS_"),
    (consents.DoNotContactReason, consent_pb2.DoNotContactReason, "DO_NOT_CONTACT_REASON_"),
    (customers.CustomerState, customer_pb2.CustomerState, "CUSTOMER_STATE_"),
    (customers.CustomerType, customer_pb2.CustomerType, "CUSTOMER_TYPE_"),
    (customers.Gender, customer_pb2.Gender, "GENDER_"),
    (customers.IdDocumentType, customer_pb2.IdDocumentType, "ID_DOCUMENT_TYPE_"),
    (customers.KycStatus, customer_pb2.KycStatus, "KYC_STATUS_"),
    (customers.RiskTolerance, customer_pb2.RiskTolerance, "RISK_TOLERANCE_"),
    (events.EventType, event_pb2.EventType, "EVENT_TYPE_"),
    (events.EventChannel, event_pb2.EventChannel, "EVENT_CHANNEL_"),
    (events.TransactionDirection, event_pb2.TransactionDirection, "TRANSACTION_DIRECTION_"),
    (events.TransactionKind, event_pb2.TransactionKind, "TRANSACTION_KIND_"),
    (events.ApplicationOutcome, event_pb2.ApplicationOutcome, "APPLICATION_OUTCOME_"),
    (history.FieldChangeKind, history_pb2.FieldChangeKind, "FIELD_CHANGE_KIND_"),
    (history.ChangeSource, history_pb2.ChangeSource, "CHANGE_SOURCE_"),
    (holdings.ProductType, holding_pb2.ProductType, "PRODUCT_TYPE_"),
    (holdings.HoldingStatus, holding_pb2.HoldingStatus, "HOLDING_STATUS_"),
    (imports.ImportFileFormat, import_pb2.ImportFileFormat, "IMPORT_FILE_FORMAT_"),
    (imports.ImportMode, import_pb2.ImportMode, "IMPORT_MODE_"),
    (audit_log.AuditAction, audit_log_pb2.AuditAction, "AUDIT_ACTION_"),
    (audit_log.AuditOutcome, audit_log_pb2.AuditOutcome, "AUDIT_OUTCOME_"),
    (audit_log.ChainFailure, audit_log_pb2.AuditChainFailure, "AUDIT_CHAIN_FAILURE_"),
    (data_subject.ErasureOutcome, privacy_pb2.ErasureOutcome, "ERASURE_OUTCOME_"),
    (key_rotation.KeyPurpose, privacy_pb2.KeyPurpose, "KEY_PURPOSE_"),
    (retention.RetentionAnchor, retention_pb2.RetentionAnchor, "RETENTION_ANCHOR_"),
    (retention.RetentionAction, retention_pb2.RetentionAction, "RETENTION_ACTION_"),
    (quality.QualityFlag, quality_pb2.QualityFlag, "QUALITY_FLAG_"),
    (relationships.RelationshipType, relationship_pb2.RelationshipType, "RELATIONSHIP_TYPE_"),
]


@pytest.mark.parametrize(("domain", "contract", "prefix"), CASES, ids=[c[0].__name__ for c in CASES])
def test_each_domain_enum_has_the_contracts_names_and_numbers(domain: type[IntEnum], contract: EnumTypeWrapper,
                                                              prefix: str) -> None:
    assert {prefix + m.name: m.value for m in domain} == {v.name: v.number for v in contract.DESCRIPTOR.values}


def test_every_enum_of_these_contracts_has_a_domain_twin() -> None:
    files = (attribute_pb2, audit_log_pb2, consent_pb2, customer_pb2, data_class_pb2, event_pb2, history_pb2,
             holding_pb2, import_pb2, privacy_pb2, quality_pb2, relationship_pb2, retention_pb2)
    declared = {e.full_name for f in files for e in f.DESCRIPTOR.enum_types_by_name.values()}
    assert declared <= {contract.DESCRIPTOR.full_name for _, contract, _ in CASES}
