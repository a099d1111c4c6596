"""Builders of the profile service's collaborators, one per sub-domain, that `app.wire` lists.

Each takes the kit, the settings it reads and the other sub-domains' parts it uses, and
returns the service object; one that starts background work registers its closer on the
runtime. No logic here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import Message

from crm_profile import tables
from crm_profile.api import (
    consent_messages,
    customer_messages,
    event_messages,
    feature_messages,
    holding_messages,
    identity_messages,
    import_messages,
    privacy_messages,
    relationship_messages,
)
from crm_profile.api.operation_rpcs import KINDS as OPERATION_KINDS
from crm_profile.attributes.repository import AttributeRepository
from crm_profile.attributes.service import AttributeCatalogue, CustomerValues
from crm_profile.consents.repository import ConsentRepository, PreferenceRepository
from crm_profile.consents.service import Consents
from crm_profile.customers import rules
from crm_profile.customers.model import Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.service import Customers
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.events.repository import EventRepository, MonthPartitions
from crm_profile.events.rules import IngestLimits
from crm_profile.events.service import Events
from crm_profile.features.repository import FeatureRepository
from crm_profile.features.service import FeatureRefresher, Features
from crm_profile.features.writer import FeatureSettings, FeatureWriter
from crm_profile.history.repository import HistoryRepository
from crm_profile.history.rules import ENUM_NAMES
from crm_profile.history.service import FieldHistory
from crm_profile.holdings.repository import HoldingRepository
from crm_profile.holdings.service import Holdings, ReportingCurrency
from crm_profile.identity.matcher import Matcher
from crm_profile.identity.merging import Merges
from crm_profile.identity.service import Identity
from crm_profile.imports.conversion import ENUM_VALUES
from crm_profile.imports.service import ImportLimits, Imports
from crm_profile.imports.worker import WorkerSettings
from crm_profile.kit import ProfileKit
from crm_profile.privacy.audit_log.repository import AuditRepository
from crm_profile.privacy.audit_log.service import AuditLog
from crm_profile.privacy.data_subject.eraser import CustomerEraser
from crm_profile.privacy.data_subject.repository import ErasureRepository
from crm_profile.privacy.data_subject.service import DataSubjectRequests
from crm_profile.privacy.key_rotation.service import KeyRotation, RotationMessages
from crm_profile.privacy.retention.repository import RetentionRepository
from crm_profile.privacy.retention.rules import minimums
from crm_profile.privacy.retention.service import PurgeMessages, Retention
from crm_profile.quality.repository import QualityRepository
from crm_profile.quality.rules import Thresholds
from crm_profile.quality.service import QualityReports
from crm_profile.relationships.repository import RelationshipRepository
from crm_profile.relationships.service import Relationships
from crm_profile.settings import ProfileSettings
from crmkit.app import Runtime
from crmkit.audit import AuditWriter
from crmkit.auth import Principal, Role
from crmkit.crypto import BlindIndex, KeyRing
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import OperationRunner, Operations
from crmkit.outbox import ChangeFeed, Outbox
from crmkit.pagination import PageTokens

# Whoever reads the change feed sees customers as a service does: personal data masked.
READ_AUDIT_LANES = 2
FEED_READER = Principal(subject="system:feed", roles=frozenset({Role.SERVICE}))


def feed_payload(customer: Customer) -> Message:
    return customer_messages.to_proto(rules.view_for(FEED_READER, customer))


def key_ring(settings: ProfileSettings) -> KeyRing:
    return KeyRing.parse(settings.encryption_keys.get_secret_value(), active_key_id=settings.active_key_id)


def build_kit(runtime: Runtime[ProfileSettings], keys: KeyRing) -> ProfileKit:
    settings = runtime.settings
    # Two read chains: GetCustomer answers only once its audit record is durable, so a read made
    # while one chain commits is written on the other rather than after that commit (issue 18).
    audit = AuditWriter(runtime.db, tables.audit_record, lanes=READ_AUDIT_LANES)
    audit.start()
    runtime.on_close(audit.close)
    vault = PersonalDataVault(keys, BlindIndex(base64.b64decode(settings.blind_index_key.get_secret_value())))
    return ProfileKit(
        db=runtime.db, vault=vault, customers=CustomerRepository(vault), outbox=Outbox(tables.outbox_event),
        idempotency=IdempotencyKeys(tables.idempotency_key), audit=audit,
        page_tokens=PageTokens(settings.derived_key("profile.page-token")),
    )


def change_feed(runtime: Runtime[ProfileSettings]) -> ChangeFeed:
    return runtime.change_feed(tables.outbox_event, tables.outbox_state,
                               poll_seconds=runtime.settings.feed_poll_seconds)


def build_history(kit: ProfileKit, settings: ProfileSettings, *, attributes: AttributeRepository) -> FieldHistory:
    return FieldHistory(repository=HistoryRepository(kit.vault), customers=kit.customers, attributes=attributes,
                        audit=kit.audit, page_tokens=kit.page_tokens, enum_names=ENUM_NAMES,
                        core_max_age_days=settings.stale_max_age_days)


def build_customers(kit: ProfileKit, *, attributes: AttributeRepository, history: FieldHistory,
                    features: FeatureWriter) -> Customers:
    return Customers(db=kit.db, repository=kit.customers, outbox=kit.outbox, idempotency=kit.idempotency,
                     audit=kit.audit, page_tokens=kit.page_tokens, feed_payload=feed_payload,
                     values=CustomerValues(attributes=attributes, customers=kit.customers), history=history,
                     features=features)


def build_attribute_catalogue(kit: ProfileKit, *, attributes: AttributeRepository,
                              history: FieldHistory) -> AttributeCatalogue:
    return AttributeCatalogue(repository=attributes, customers=kit.customers, history=history, outbox=kit.outbox,
                              idempotency=kit.idempotency, page_tokens=kit.page_tokens, feed_payload=feed_payload)


def build_quality(kit: ProfileKit, settings: ProfileSettings, *, attributes: AttributeRepository) -> QualityReports:
    return QualityReports(
        repository=QualityRepository(kit.vault), attributes=attributes,
        defaults=Thresholds(min_completeness_percent=settings.quality_min_completeness_percent,
                            max_error_rate_percent=settings.quality_max_error_rate_percent),
        expected_fields=settings.quality_expected_fields, cache_seconds=settings.quality_cache_seconds)


def build_holdings(kit: ProfileKit, settings: ProfileSettings, *, history: FieldHistory,
                   features: FeatureWriter) -> Holdings:
    return Holdings(
        repository=HoldingRepository(), customers=kit.customers, outbox=kit.outbox, idempotency=kit.idempotency,
        audit=kit.audit, page_tokens=kit.page_tokens, feed_payload=holding_messages.to_proto,
        customer_payload=feed_payload, history=history,
        reporting=ReportingCurrency(settings.reporting_currency, settings.fx_rates), features=features)


def build_consents(kit: ProfileKit, *, history: FieldHistory) -> Consents:
    return Consents(customers=kit.customers, outbox=kit.outbox, idempotency=kit.idempotency, audit=kit.audit,
                    page_tokens=kit.page_tokens, payloads=consent_messages.FeedPayloads(feed_payload),
                    history=history)


def build_relationships(kit: ProfileKit) -> Relationships:
    return Relationships(customers=kit.customers, outbox=kit.outbox, idempotency=kit.idempotency,
                         audit=kit.audit, page_tokens=kit.page_tokens, payload=relationship_messages.to_proto)


async def build_events(kit: ProfileKit, settings: ProfileSettings, *, policies: RetentionRepository,
                       partitions: MonthPartitions) -> Events:
    events = Events(db=kit.db, repository=EventRepository(), partitions=partitions, audit=kit.audit,
                    page_tokens=kit.page_tokens, feed_payload=event_messages.feed_payload,
                    limits=IngestLimits(max_batch_events=settings.events_max_batch_events,
                                        max_message_bytes=settings.events_max_message_bytes,
                                        max_clock_skew=timedelta(seconds=settings.events_max_clock_skew_seconds)),
                    policies=policies)
    await events.prepare()
    return events


def build_feature_writer(kit: ProfileKit, settings: ProfileSettings) -> FeatureWriter:
    return FeatureWriter(
        repository=FeatureRepository(), outbox=kit.outbox, feed_payload=feature_messages.to_proto,
        settings=FeatureSettings(reporting_currency=settings.reporting_currency, rates=settings.fx_rates,
                                 rfm_window_days=settings.features_rfm_window_days,
                                 refresh_seconds=settings.features_refresh_seconds))


def build_features(runtime: Runtime[ProfileSettings], kit: ProfileKit, *, writer: FeatureWriter,
                   operations: Operations, runner: OperationRunner) -> Features:
    """The features' RPCs, and the refresher that recomputes customers whose events arrived."""
    refresher = FeatureRefresher(db=kit.db, writer=writer, repository=FeatureRepository())
    refresher.start()
    runtime.on_close(refresher.close)
    return Features(writer=writer, repository=FeatureRepository(), idempotency=kit.idempotency,
                    audit=kit.audit, operations=operations, runner=runner,
                    database_url=runtime.settings.database_url, feed_payload=feature_messages.to_proto,
                    describe=feature_messages.describe, result=feature_messages.result)


def build_identity(runtime: Runtime[ProfileSettings], kit: ProfileKit, *, history: FieldHistory,
                   features: FeatureWriter) -> tuple[Identity, Merges]:
    """Matching and merging, and the background matcher when enabled."""
    settings = runtime.settings
    identity = Identity(vault=kit.vault, customers=kit.customers, idempotency=kit.idempotency, audit=kit.audit,
                        page_tokens=kit.page_tokens)
    merges = Merges(customers=kit.customers, outbox=kit.outbox, idempotency=kit.idempotency, audit=kit.audit,
                    page_tokens=kit.page_tokens, vault=kit.vault,
                    payloads=identity_messages.FeedPayloads(feed_payload), identity=identity, history=history,
                    features=features)
    if settings.matcher_enabled:
        matcher = Matcher(db=kit.db, identity=identity, merges=merges, customers=kit.customers,
                          poll_seconds=settings.matcher_poll_seconds)
        matcher.start()
        runtime.on_close(matcher.close)
    return identity, merges


def build_operations(runtime: Runtime[ProfileSettings], kit: ProfileKit, *,
                     error_domain: str) -> tuple[Operations, OperationRunner]:
    """The operations table's service, and the runner of their work in worker processes."""
    settings = runtime.settings
    operations = Operations(runtime.db, tables.operation, kit.page_tokens, kinds=OPERATION_KINDS,
                            poll_seconds=settings.operation_poll_seconds, draining=runtime.draining)
    runner = OperationRunner(operations=operations, service=runtime.name, error_domain=error_domain,
                             workers=settings.operation_workers, log_level=settings.log_level)
    runner.start()
    runtime.on_close(lambda: runner.close(grace=settings.shutdown_grace_seconds))
    return operations, runner


def build_imports(runtime: Runtime[ProfileSettings], kit: ProfileKit, *, attributes: AttributeRepository,
                  operations: Operations, runner: OperationRunner, error_domain: str) -> Imports:
    settings = runtime.settings
    imports = Imports(
        db=kit.db, idempotency=kit.idempotency, operations=operations, runner=runner, attributes=attributes,
        settings=WorkerSettings(database_url=settings.database_url, encryption_keys=settings.encryption_keys,
                                active_key_id=settings.active_key_id, blind_index_key=settings.blind_index_key),
        enum_values=ENUM_VALUES, enum_names=ENUM_NAMES, feed_payload=feed_payload,
        describe=import_messages.describe, error_domain=error_domain,
        limits=ImportLimits(max_upload_bytes=settings.import_max_upload_bytes,
                            upload_area_bytes=settings.import_upload_area_bytes,
                            parallel_parts=settings.operation_workers))
    imports.start_housekeeping()
    runtime.on_close(imports.stop_housekeeping)
    return imports


@dataclass(frozen=True)
class Privacy:
    """The privacy sub-domain's services, one per group of RPCs."""

    data_subject_requests: DataSubjectRequests
    key_rotation: KeyRotation
    audit_log: AuditLog
    retention: Retention


async def build_privacy(runtime: Runtime[ProfileSettings], kit: ProfileKit, *, keys: KeyRing, feed: ChangeFeed,
                        history: FieldHistory, policies: RetentionRepository, partitions: MonthPartitions,
                        operations: Operations, runner: OperationRunner) -> Privacy:
    """Data-subject requests, key rotation, the audit log and retention (with its schedule)."""
    settings = runtime.settings
    erasure = ErasureRepository()
    eraser = CustomerEraser(repository=erasure, history=history)
    key_rotation = KeyRotation(
        db=kit.db, keys=keys, configured_key_id=settings.active_key_id, operations=operations, runner=runner,
        idempotency=kit.idempotency, database_url=settings.database_url, encryption_keys=settings.encryption_keys,
        messages=RotationMessages(privacy_messages.rotation_metadata, privacy_messages.rotation_result))
    await key_rotation.prepare()
    purge_every = timedelta(hours=settings.retention_purge_interval_hours)
    retention = Retention(
        db=kit.db, repository=policies, erasure=erasure, eraser=eraser, customers=kit.customers,
        operations=operations, runner=runner, idempotency=kit.idempotency, outbox=kit.outbox, feed=feed,
        feed_retention=settings.feed_retention, page_tokens=kit.page_tokens,
        messages=PurgeMessages(privacy_messages.purge_metadata, privacy_messages.purge_result, feed_payload),
        partitions_dropped=partitions.forget, schedule_every=purge_every if purge_every else None)
    retention.start_schedule()
    runtime.on_close(retention.stop_schedule)
    data_subject_requests = DataSubjectRequests(
        repository=erasure, eraser=eraser, customers=kit.customers, policies=policies,
        audit_log=AuditRepository(), history=history, holdings=HoldingRepository(), consents=ConsentRepository(),
        preferences=PreferenceRepository(), relationships=RelationshipRepository(), events=EventRepository(),
        features=FeatureRepository(), outbox=kit.outbox, idempotency=kit.idempotency, audit=kit.audit)
    return Privacy(
        data_subject_requests=data_subject_requests, key_rotation=key_rotation, retention=retention,
        audit_log=AuditLog(repository=AuditRepository(), audit=kit.audit, page_tokens=kit.page_tokens))


def retention_policies(settings: ProfileSettings) -> RetentionRepository:
    return RetentionRepository(minimums(settings.retention_minimum_days))
