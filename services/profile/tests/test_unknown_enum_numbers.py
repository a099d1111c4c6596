"""Wherever a request carries an enum, a number the contract does not know is named as unknown
(not reported as missing, not quietly read as unspecified)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from crm.profile.v1 import attribute_pb2
from crm_profile.api import attribute_messages
from crm_profile.attributes.model import DataClass
from crm_profile.consents import rules as consent_rules
from crm_profile.consents.model import ConsentEvidence, ConsentRecord, ContactPreferences, ContactWindow
from crm_profile.identity import rules as identity_rules
from crm_profile.identity.model import IdDocumentKey, Identifier
from crm_profile.imports import rules as import_rules
from crm_profile.imports.conversion import ENUM_VALUES
from crm_profile.imports.model import CsvOptions, IdRule, ImportSpec, UploadHeader
from crm_profile.privacy.audit_log import rules as audit_rules
from crm_profile.privacy.data_subject import rules as data_subject_rules
from crm_profile.privacy.retention import rules as retention_rules
from crm_profile.privacy.retention.model import PolicyChanges
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import Violations

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _record(**numbers: int) -> ConsentRecord:
    values = {"purpose": 1, "channel": 1, "decision": 1, **numbers}
    source = values.pop("source", 1)
    return ConsentRecord(customer_id="C1", **values, record_id=uuid.uuid4(), recorded_at=NOW,
                         evidence=ConsentEvidence(source=source, source_reference="FORM-1", effective_at=NOW,
                                                  text_version="MKT-CN-2025.03", recorded_by="emp-1"))


def _consents(**numbers: int) -> None:
    consent_rules.validate_records([_record(**numbers)], now=NOW)


def _preferences(**values: object) -> None:
    consent_rules.validate_preferences(ContactPreferences(customer_id="C1", **values),
                                       today=NOW.date()).raise_if_any()


def _attribute(**numbers: int) -> None:
    attribute_messages.definition_to_domain(attribute_pb2.AttributeDefinition(
        attribute_id="tier", display_name="Tier", value_type=numbers.get("value_type", 1),
        data_class=numbers.get("data_class", 1)))


def _retention(**numbers: int) -> None:
    current = retention_rules.DEFAULT_POLICIES[DataClass.TRANSACTION]
    retention_rules.updated(current, PolicyChanges(**numbers), list(numbers))


def _violations(check: Callable[[Violations], object]) -> None:
    v = Violations()
    check(v)
    v.raise_if_any()


def _audit_actions(actions: list[int]) -> None:
    found: list[FieldViolation] = []
    audit_rules.check_actions(actions, "actions", found)
    if found:
        raise InvalidArgument(found)


CASES: dict[str, tuple[Callable[[], object], str, str]] = {
    "consent purpose": (lambda: _consents(purpose=42), "consents[0].purpose", "ConsentPurpose"),
    "consent channel": (lambda: _consents(channel=42), "consents[0].channel", "ContactChannel"),
    "consent decision": (lambda: _consents(decision=42), "consents[0].decision", "ConsentDecision"),
    "consent source": (lambda: _consents(source=42), "consents[0].evidence.source", "ConsentSource"),
    "do-not-contact reason": (lambda: _preferences(do_not_contact=True, do_not_contact_reason=42),
                              "contact_preferences.do_not_contact_reason", "DoNotContactReason"),
    "preferred channel": (lambda: _preferences(preferred_channels=(42,)),
                          "contact_preferences.preferred_channels[0]", "ContactChannel"),
    "contact window day": (lambda: _preferences(contact_windows=(ContactWindow(days=(42,), start=None, end=None),)),
                           "contact_preferences.contact_windows[0].days[0]", "DayOfWeek"),
    "attribute value type": (lambda: _attribute(value_type=42), "attribute_definition.value_type", "ValueType"),
    "attribute data class": (lambda: _attribute(data_class=42), "attribute_definition.data_class", "DataClass"),
    "import file format": (lambda: import_rules.check_header(
        UploadHeader(file_name="a.csv", format=42, size_bytes=1, sha256="0" * 64), max_bytes=10),
        "header.format", "ImportFileFormat"),
    "import mode": (lambda: import_rules.check_request(
        ImportSpec(upload="imports/uploads/u1", csv=CsvOptions(), id_rule=IdRule(column="id"), columns=(), mode=42,
                   max_bad_rows=0, validate_only=False, source_system="core"), enum_values=ENUM_VALUES).raise_if_any(),
        "mode", "ImportMode"),
    "identifier document type": (lambda: identity_rules.validate_identifier(
        Identifier(id_document=IdDocumentKey(type=42, number="G12345678", issuing_country="CN"))),
        "id_document.type", "IdDocumentType"),
    "retention anchor": (lambda: _retention(anchor=42), "retention_policy.anchor", "RetentionAnchor"),
    "retention action": (lambda: _retention(action=42), "retention_policy.action", "RetentionAction"),
    "purge data class": (lambda: _violations(lambda v: retention_rules.check_purge_classes([42], v)),
                         "data_classes[0]", "DataClass"),
    "data subject data class": (lambda: _violations(
        lambda v: data_subject_rules.check_data_classes([42], "data_classes", v)), "data_classes[0]", "DataClass"),
    "audit action": (lambda: _audit_actions([42]), "actions[0]", "AuditAction"),
}


@pytest.mark.parametrize("case", CASES)
def test_an_unknown_number_is_named_as_unknown(case: str) -> None:
    check, field, enum = CASES[case]
    with pytest.raises(InvalidArgument) as error:
        check()
    found = {v.field: v.description for v in error.value.violations}
    assert found.get(field) == f"42 is not a known {enum} value"
