"""Privacy protos <-> domain values (erasure, export, audit log, retention, key rotation).
Nothing else: no rules, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from google.protobuf.message import Message

from crm.common.v1 import audit_pb2
from crm.profile.v1 import audit_log_pb2, data_class_pb2, history_pb2, privacy_pb2, retention_pb2
from crm_profile.api import (
    consent_messages,
    customer_messages,
    event_messages,
    feature_messages,
    holding_messages,
    relationship_messages,
)
from crm_profile.attributes.model import DataClass
from crm_profile.customers.model import CustomerView
from crm_profile.history.repository import StoredChange
from crm_profile.privacy.audit_log import rules as audit_rules
from crm_profile.privacy.audit_log.model import AuditFilter, AuditRow, ChainCheck
from crm_profile.privacy.data_subject.model import ErasureReport, ExportPart
from crm_profile.privacy.key_rotation.model import KeyPurpose, RotationResult
from crm_profile.privacy.retention.model import PolicyChanges, PurgeResult, RetentionPolicy
from crmkit.errors import FieldViolation
from crmkit.resources import ResourceName, purpose_from
from crmkit.validation import Violations
from crmkit.values import duration, set_timestamps, timestamp

CUSTOMER = ResourceName("customers/{customer_id}")
RETENTION_POLICY = ResourceName("retentionPolicies/{data_class}", id_pattern=r"[a-z-]{1,32}",
                                rule="must be a resource name like retentionPolicies/behaviour")


# --- erasure and export ------------------------------------------------------------------------------


def report_to_proto(report: ErasureReport) -> privacy_pb2.ErasureReport:
    message = privacy_pb2.ErasureReport(customer=report.name)
    if report.erase_time is not None:
        message.erase_time.CopyFrom(timestamp(report.erase_time))
    for entry in report.classes:
        added = message.data_classes.add(data_class=int(entry.data_class), outcome=int(entry.outcome),
                                         record_count=entry.record_count)
        set_timestamps(added, restricted_until=entry.restricted_until)
    return message


def field_change_to_proto(change: StoredChange) -> history_pb2.FieldChange:
    message = history_pb2.FieldChange(
        name=f"customers/{change.customer_id}/fieldChanges/{change.entry_id}", field=change.field,
        kind=history_pb2.FieldChangeKind.ValueType(change.kind), old_value=change.old, new_value=change.new,
        masked=False,
        actor=change.actor, source=history_pb2.ChangeSource.ValueType(change.source),
        source_system=change.source_system,
        origin=change.origin)
    set_timestamps(message, change_time=change.changed_at)
    return message


def export_to_proto(part: ExportPart) -> privacy_pb2.ExportCustomerDataResponse:
    """One message of the export stream, in clear: the data is the customer's own."""
    message = privacy_pb2.ExportCustomerDataResponse(
        holdings=[holding_messages.to_proto(h) for h in part.holdings],
        consent_records=[consent_messages.record_to_proto(r) for r in part.consent_records],
        relationships=[relationship_messages.to_proto(r) for r in part.relationships],
        events=[event_messages.to_proto(e) for e in part.events],
        field_changes=[field_change_to_proto(c) for c in part.field_changes],
        access_records=[audit_record_to_proto(r) for r in part.access_records],
    )
    if part.manifest is not None:
        m = part.manifest
        message.manifest.CopyFrom(privacy_pb2.ExportManifest(
            export_id=str(m.export_id), customer=f"customers/{m.customer_id}",
            snapshot_time=timestamp(m.snapshot_time),
            data_classes=[data_class_pb2.DataClass.ValueType(c) for c in m.data_classes]))
    if part.customer is not None:
        message.customer.CopyFrom(customer_messages.to_proto(CustomerView(part.customer)))
    if part.preferences is not None:
        message.contact_preferences.CopyFrom(consent_messages.preferences_to_proto(part.preferences))
    if part.features is not None:
        message.features.CopyFrom(feature_messages.to_proto(part.features))
    return message


# --- the audit log ---------------------------------------------------------------------------------


def _purpose_number(purpose: str) -> int:
    name = f"ACCESS_PURPOSE_{purpose}"
    return audit_pb2.AccessPurpose.Value(name) if name in audit_pb2.AccessPurpose.DESCRIPTOR.values_by_name else 0


def _outcome_number(outcome: str) -> int:
    """0 (unspecified) for a stored outcome the contract does not know: shown, not hidden, so the
    record's hash check fails where it was altered."""
    found = audit_log_pb2.AuditOutcome.DESCRIPTOR.values_by_name.get(f"AUDIT_OUTCOME_{outcome}")
    return found.number if found is not None else 0


def audit_record_to_proto(row: AuditRow) -> audit_log_pb2.AuditRecord:
    """The kit's record as the contract's, every stored column shown, so that `record_hash` can be
    recomputed from the message alone (audit_log.proto)."""
    parts = row.resource_name.split("/")
    customers = [f"customers/{parts[1]}"] if len(parts) >= 2 and parts[0] == "customers" else []
    message = audit_log_pb2.AuditRecord(
        name=f"auditRecords/{row.seq}", sequence=row.seq, actor=row.principal, actor_roles=row.actor_roles,
        method=row.method,
        action=audit_log_pb2.AuditAction.ValueType(audit_rules.action_of(row.action)),
        customers=customers, purpose=audit_pb2.AccessPurpose.ValueType(_purpose_number(row.purpose)),
        fields=row.fields, justification=row.justification,
        outcome=audit_log_pb2.AuditOutcome.ValueType(_outcome_number(row.outcome)),
        trace_id=row.trace_id, previous_hash=row.prev_hash.hex(), record_hash=row.hash.hex(), chain=row.chain_id,
        resource=row.resource_name, operation=row.action, hash_recipe=row.hash_recipe)
    set_timestamps(message, record_time=row.recorded_at)
    return message


def audit_filter_to_domain(request: audit_log_pb2.ListAuditRecordsRequest, violations: Violations) -> AuditFilter:
    """The request's filters; bad ones recorded in `violations` (with the request's purpose)."""
    purpose_from(request.audit, violations=violations)
    customer_id = ""
    if request.customer and CUSTOMER.check(request.customer, "customer", violations):
        customer_id = CUSTOMER.parse_one(request.customer, "customer")
    purpose = ""
    if request.purpose and violations.check(request.purpose in audit_pb2.AccessPurpose.values(), "purpose",
                                            "is not an AccessPurpose"):
        purpose = audit_pb2.AccessPurpose.Name(request.purpose).removeprefix("ACCESS_PURPOSE_")
    bad: list[FieldViolation] = []
    audit_rules.check_actions(request.actions, "actions", bad)
    for violation in bad:
        violations.add(violation.field, violation.description)
    start = end = None
    if request.HasField("record_interval"):
        interval = request.record_interval
        start = interval.start_time.ToDatetime(tzinfo=UTC) if interval.HasField("start_time") else None
        end = interval.end_time.ToDatetime(tzinfo=UTC) if interval.HasField("end_time") else None
        violations.check(start is None or end is None or start <= end, "record_interval.end_time",
                         "must not be before record_interval.start_time")
    return AuditFilter(customer_id=customer_id, actor=request.actor, purpose=purpose,
                       actions=tuple(sorted(set(request.actions))), start=start, end=end)


def chain_check_to_proto(check: ChainCheck) -> audit_log_pb2.VerifyAuditChainResponse:
    return audit_log_pb2.VerifyAuditChainResponse(
        valid=check.valid, start_sequence=check.start_sequence, end_sequence=check.end_sequence,
        end_hash=check.end_hash.hex(), first_invalid_sequence=check.first_invalid_sequence,
        failure=audit_log_pb2.AuditChainFailure.ValueType(check.failure))


# --- retention -------------------------------------------------------------------------------------


def policy_to_proto(policy: RetentionPolicy) -> retention_pb2.RetentionPolicy:
    message = retention_pb2.RetentionPolicy(
        name=policy.name, data_class=data_class_pb2.DataClass.ValueType(policy.data_class), etag=policy.etag,
        retention_period=duration(policy.retention), anchor=retention_pb2.RetentionAnchor.ValueType(policy.anchor),
        action=retention_pb2.RetentionAction.ValueType(policy.action),
        minimum_retention_period=duration(policy.minimum),
        overrides_erasure=policy.overrides_erasure, legal_basis=policy.legal_basis)
    set_timestamps(message, update_time=policy.updated_at, last_purge_time=policy.last_purge_at)
    return message


def policy_changes(message: retention_pb2.RetentionPolicy) -> tuple[str, PolicyChanges]:
    """The policy's id (`behaviour`) and the values the request carries."""
    slug = RETENTION_POLICY.parse_one(message.name, "retention_policy.name", required=True)
    period = message.retention_period.ToTimedelta() if message.HasField("retention_period") else None
    return slug, PolicyChanges(retention=period, anchor=message.anchor, action=message.action,
                               overrides_erasure=message.overrides_erasure, legal_basis=message.legal_basis)


def purge_metadata(classes: Sequence[DataClass], validate_only: bool) -> Message:
    return retention_pb2.RunRetentionPurgeRequest(data_classes=[data_class_pb2.DataClass.ValueType(c) for c in classes],
                                                  validate_only=validate_only)


def purge_result(result: PurgeResult) -> Message:
    return retention_pb2.RetentionPurgeResult(validate_only=result.validate_only, classes=[
        retention_pb2.RetentionPurgeClassResult(data_class=data_class_pb2.DataClass.ValueType(c.data_class),
                                                cutoff_time=timestamp(c.cutoff), deleted_count=c.deleted,
                                                anonymised_count=c.anonymised)
        for c in result.classes])


# --- key rotation ----------------------------------------------------------------------------------


def rotation_metadata(purpose: KeyPurpose, target_key_id: str, previous_key_ids: list[str]) -> Message:
    return privacy_pb2.RotateEncryptionKeyMetadata(purpose=privacy_pb2.KeyPurpose.ValueType(purpose),
                                                   target_key_id=target_key_id,
                                                   previous_key_ids=previous_key_ids)


def rotation_result(result: RotationResult) -> Message:
    return privacy_pb2.RotateEncryptionKeyResult(rewritten_count=result.rewritten,
                                                 retired_key_ids=list(result.retired_key_ids))

