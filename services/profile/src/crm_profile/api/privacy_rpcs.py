"""Privacy RPCs of ProfileService: proto -> arguments, one unit of work and one service call in it,
result -> proto.

Erasure and export (the data subject's rights), key rotation, the audit log and retention.
Problems found while reading a request are handed to the service, which reports them together
with its own checks (every bad field at once). An RPC that starts an operation launches it after
its unit of work has committed (`crmkit.operations.Started`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.profile.v1 import audit_log_pb2, privacy_pb2, retention_pb2
from crm_profile.api import privacy_messages
from crm_profile.api.privacy_messages import CUSTOMER
from crm_profile.privacy.audit_log.service import AuditLog
from crm_profile.privacy.data_subject.service import DataSubjectRequests
from crm_profile.privacy.key_rotation.service import KeyRotation
from crm_profile.privacy.retention.service import Retention
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import purpose_of
from crmkit.validation import Violations


def _customer_id(name: str, violations: Violations) -> str:
    return (CUSTOMER.id_in(name) or "") if CUSTOMER.check(name, "name", violations, required=True) else ""


class PrivacyRpcs:
    """EraseCustomer, ExportCustomerData, RotateEncryptionKey, the audit log and retention."""

    _db: Database
    _data_subject_requests: DataSubjectRequests
    _key_rotation: KeyRotation
    _audit_log: AuditLog
    _retention: Retention

    async def EraseCustomer(self, request: privacy_pb2.EraseCustomerRequest, context: grpc.aio.ServicerContext
                            ) -> privacy_pb2.EraseCustomerResponse:
        bad = Violations()
        customer_id = _customer_id(request.name, bad)
        request_id = parse_request_id(request.request_id, violations=bad)
        async with self._db.unit_of_work() as uow:
            report = await self._data_subject_requests.erase(
                uow=uow, customer_id=customer_id, etag=request.etag, validate_only=request.validate_only,
                request_id=request_id, request=request, purpose=purpose_of(request.audit), actor=current_principal(),
                violations=bad)
        return privacy_pb2.EraseCustomerResponse(report=privacy_messages.report_to_proto(report))

    async def ExportCustomerData(self, request: privacy_pb2.ExportCustomerDataRequest, context: grpc.aio.ServicerContext
                                 ) -> AsyncIterator[privacy_pb2.ExportCustomerDataResponse]:
        bad = Violations()
        customer_id = _customer_id(request.name, bad)
        async with self._db.unit_of_work(read_only=True) as uow:
            async for part in self._data_subject_requests.export(
                    uow=uow, customer_id=customer_id, data_classes=list(request.data_classes),
                    purpose=purpose_of(request.audit), actor=current_principal(), violations=bad):
                yield privacy_messages.export_to_proto(part)

    async def RotateEncryptionKey(self, request: privacy_pb2.RotateEncryptionKeyRequest,
                                  context: grpc.aio.ServicerContext) -> privacy_pb2.RotateEncryptionKeyResponse:
        bad = Violations()
        request_id = parse_request_id(request.request_id, violations=bad)
        async with self._db.unit_of_work() as uow:
            started = await self._key_rotation.start(
                uow=uow, purpose=request.purpose, target_key_id=request.target_key_id, request_id=request_id,
                request=request, actor=current_principal(), violations=bad)
        started.launch()
        return privacy_pb2.RotateEncryptionKeyResponse(operation=started.operation)

    async def ListAuditRecords(self, request: audit_log_pb2.ListAuditRecordsRequest,
                               context: grpc.aio.ServicerContext) -> audit_log_pb2.ListAuditRecordsResponse:
        bad = Violations()
        narrowing = privacy_messages.audit_filter_to_domain(request, bad)
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._audit_log.list(uow=uow, narrowing=narrowing, page_size=request.page_size,
                                              page_token=request.page_token, purpose=purpose_of(request.audit),
                                              actor=current_principal(), violations=bad)
        return audit_log_pb2.ListAuditRecordsResponse(
            audit_records=[privacy_messages.audit_record_to_proto(r) for r in page.items],
            next_page_token=page.next_page_token)

    async def VerifyAuditChain(self, request: audit_log_pb2.VerifyAuditChainRequest,
                               context: grpc.aio.ServicerContext) -> audit_log_pb2.VerifyAuditChainResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            check = await self._audit_log.verify(uow=uow, start=request.start_sequence, end=request.end_sequence,
                                                 expected_end_hash=request.expected_end_hash)
        return privacy_messages.chain_check_to_proto(check)

    async def ListRetentionPolicies(self, request: retention_pb2.ListRetentionPoliciesRequest,
                                    context: grpc.aio.ServicerContext) -> retention_pb2.ListRetentionPoliciesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._retention.list(uow=uow, page_size=request.page_size, page_token=request.page_token)
        return retention_pb2.ListRetentionPoliciesResponse(
            retention_policies=[privacy_messages.policy_to_proto(p) for p in page.items],
            next_page_token=page.next_page_token)

    async def UpdateRetentionPolicy(self, request: retention_pb2.UpdateRetentionPolicyRequest,
                                    context: grpc.aio.ServicerContext) -> retention_pb2.UpdateRetentionPolicyResponse:
        slug, changes = privacy_messages.policy_changes(request.retention_policy)
        async with self._db.unit_of_work() as uow:
            policy = await self._retention.update(uow=uow, slug=slug, changes=changes,
                                                  paths=list(request.update_mask.paths),
                                                  etag=request.retention_policy.etag, actor=current_principal())
        return retention_pb2.UpdateRetentionPolicyResponse(retention_policy=privacy_messages.policy_to_proto(policy))

    async def RunRetentionPurge(self, request: retention_pb2.RunRetentionPurgeRequest,
                                context: grpc.aio.ServicerContext) -> retention_pb2.RunRetentionPurgeResponse:
        bad = Violations()
        request_id = parse_request_id(request.request_id, violations=bad)
        async with self._db.unit_of_work() as uow:
            started = await self._retention.start_purge(
                uow=uow, data_classes=list(request.data_classes), validate_only=request.validate_only,
                request_id=request_id, request=request, actor=current_principal(), violations=bad)
        started.launch()
        return retention_pb2.RunRetentionPurgeResponse(operation=started.operation)
