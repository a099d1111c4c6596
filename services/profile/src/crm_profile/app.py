"""Wiring of the profile service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import Field, SecretStr

from crm.profile.v1 import profile_service_pb2_grpc
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
from crm_profile.api.access import ACCESS, SERVICE
from crm_profile.api.history_rpcs import ENUM_NAMES
from crm_profile.api.operation_rpcs import KINDS as OPERATION_KINDS
from crm_profile.api.profile_servicer import ProfileServicer
from crm_profile.attributes.repository import AttributeRepository
from crm_profile.attributes.service import AttributeCatalogue, CustomerValues
from crm_profile.consents.repository import ConsentRepository, PreferenceRepository
from crm_profile.consents.service import Consents
from crm_profile.customers import rules
from crm_profile.customers.model import Customer
from crm_profile.customers.privacy import PersonalDataVault
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.service import Customers
from crm_profile.events.repository import EventRepository, MonthPartitions
from crm_profile.events.rules import IngestLimits
from crm_profile.events.service import Events
from crm_profile.features.repository import FeatureRepository
from crm_profile.features.service import FeatureRefresher, Features, FeatureSettings, FeatureWriter
from crm_profile.history.repository import HistoryRepository
from crm_profile.history.service import FieldHistory
from crm_profile.holdings.repository import HoldingRepository
from crm_profile.holdings.service import Holdings, ReportingCurrency
from crm_profile.identity.matcher import Matcher
from crm_profile.identity.merging import Merges
from crm_profile.identity.service import Identity
from crm_profile.imports.service import ImportLimits, Imports
from crm_profile.imports.worker import WorkerSettings
from crm_profile.kit import ProfileKit
from crm_profile.privacy.audit_log import AuditLog
from crm_profile.privacy.audit_repository import AuditRepository
from crm_profile.privacy.erasure import CustomerEraser
from crm_profile.privacy.repository import ErasureRepository
from crm_profile.privacy.retention import PurgeMessages, Retention
from crm_profile.privacy.retention_repository import RetentionRepository
from crm_profile.privacy.retention_rules import DEFAULT_MINIMUM_DAYS, minimums
from crm_profile.privacy.rotation import KeyRotation, RotationMessages
from crm_profile.privacy.service import DataSubjectRequests
from crm_profile.quality.repository import QualityRepository
from crm_profile.quality.rules import Thresholds
from crm_profile.quality.service import QualityReports
from crm_profile.relationships.repository import RelationshipRepository
from crm_profile.relationships.service import Relationships
from crmkit.app import Runtime, ServiceSpec
from crmkit.audit import AuditWriter
from crmkit.auth import Principal, Role
from crmkit.crypto import BlindIndex, KeyRing
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import OperationRunner, Operations
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.server import ServiceBinding
from crmkit.settings import ServiceSettings

# Defaults of CRM_PROFILE_STALE_MAX_AGE_DAYS: contact details and the suitability assessment are
# re-confirmed yearly, occupation every two years.
STALE_MAX_AGE_DAYS = {"mobile_phone": 365, "email": 365, "address": 365, "risk_tolerance": 365, "occupation": 730}
# Defaults of CRM_PROFILE_QUALITY_EXPECTED_FIELDS.
EXPECTED_FIELDS = ("full_name", "birth_date", "id_document.number", "mobile_phone", "address", "kyc_status",
                   "risk_tolerance")

# Whoever reads the change feed sees customers as a service does: personal data masked.
FEED_READER = Principal(subject="system:feed", roles=frozenset({Role.SERVICE}))


class ProfileSettings(ServiceSettings):
    database_url: str = Field(validation_alias="CRM_PROFILE_DATABASE_URL")
    port: int = Field(default=50051, validation_alias="CRM_PROFILE_PORT", ge=0, le=65535)
    # AES-256 keys as `key_id:base64,key_id:base64`; the active one seals new values.
    encryption_keys: SecretStr = Field(validation_alias="CRM_PROFILE_ENCRYPTION_KEYS")
    active_key_id: str = Field(validation_alias="CRM_PROFILE_ACTIVE_KEY_ID")
    # Base64 key (32 bytes or more) of the blind indexes; never rotated without a re-index.
    blind_index_key: SecretStr = Field(validation_alias="CRM_PROFILE_BLIND_INDEX_KEY")
    feed_poll_seconds: float = Field(default=0.25, gt=0, le=10, validation_alias="CRM_PROFILE_FEED_POLL_SECONDS")
    feed_retention_days: int = Field(default=30, ge=1, le=3650, validation_alias="CRM_PROFILE_FEED_RETENTION_DAYS")
    # Maximum age in days of core fields before ListStaleFields prompts staff to confirm them, as
    # JSON (`{"mobile_phone": 365}`); fields not listed never go stale (attributes: `max_age`).
    stale_max_age_days: dict[str, int] = Field(default_factory=lambda: dict(STALE_MAX_AGE_DAYS),
                                               validation_alias="CRM_PROFILE_STALE_MAX_AGE_DAYS")
    quality_min_completeness_percent: float = Field(
        default=98.0, ge=0, le=100, validation_alias="CRM_PROFILE_QUALITY_MIN_COMPLETENESS_PERCENT")
    quality_max_error_rate_percent: float = Field(
        default=2.0, ge=0, le=100, validation_alias="CRM_PROFILE_QUALITY_MAX_ERROR_RATE_PERCENT")
    # Core fields every customer is expected to have (held to the completeness threshold), as JSON.
    quality_expected_fields: list[str] = Field(default_factory=lambda: list(EXPECTED_FIELDS),
                                               validation_alias="CRM_PROFILE_QUALITY_EXPECTED_FIELDS")
    # How long a computed data-quality report is reused (it scans every customer), seconds.
    quality_cache_seconds: float = Field(default=300.0, ge=0, le=3600,
                                         validation_alias="CRM_PROFILE_QUALITY_CACHE_SECONDS")
    # Holdings: the bank's reporting currency (AUM is summed in it) and reference rates to it, as
    # JSON: units of the reporting currency per unit of another (`{"USD": "7.10", "HKD": "0.91"}`).
    reporting_currency: str = Field(default="CNY", validation_alias="CRM_PROFILE_REPORTING_CURRENCY")
    fx_rates: dict[str, Decimal] = Field(default_factory=dict, validation_alias="CRM_PROFILE_FX_RATES")
    # The background matcher applies the enabled match rules to changed customers (off: only
    # FindMatches and manual merges; for bulk loads that match afterwards).
    matcher_enabled: bool = Field(default=True, validation_alias="CRM_PROFILE_MATCHER_ENABLED")
    # Long-running operations: worker processes (spawned) for imports and other batch work, and
    # how often WatchOperation looks for progress.
    operation_workers: int = Field(default=2, ge=1, le=64, validation_alias="CRM_PROFILE_OPERATION_WORKERS")
    operation_poll_seconds: float = Field(default=0.5, gt=0, le=10,
                                          validation_alias="CRM_PROFILE_OPERATION_POLL_SECONDS")
    # Bulk import: the largest file accepted (at most the contract's 10 GiB) and the space all
    # unexpired uploads may take together in the database.
    import_max_upload_bytes: int = Field(default=10 * 1024**3, ge=1, le=10 * 1024**3,
                                         validation_alias="CRM_PROFILE_IMPORT_MAX_UPLOAD_BYTES")
    import_upload_area_bytes: int = Field(default=50 * 1024**3, ge=1,
                                          validation_alias="CRM_PROFILE_IMPORT_UPLOAD_AREA_BYTES")
    # Retention: the legal floor of each data class's period, as JSON days by class
    # (`{"transaction": 1825}`; see privacy/retention_rules.py), and how often the purge runs by
    # itself (0: only when RunRetentionPurge asks).
    retention_minimum_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MINIMUM_DAYS),
                                                   validation_alias="CRM_PROFILE_RETENTION_MINIMUM_DAYS")
    retention_purge_interval_hours: float = Field(default=24.0, ge=0, le=24 * 31,
                                                  validation_alias="CRM_PROFILE_RETENTION_PURGE_INTERVAL_HOURS")
    # Derived features: the RFM window, and how often the refresher recomputes customers whose
    # events arrived (in batches of up to a thousand).
    features_rfm_window_days: int = Field(default=365, ge=1, le=3650,
                                          validation_alias="CRM_PROFILE_FEATURES_RFM_WINDOW_DAYS")
    features_refresh_seconds: float = Field(default=1.0, gt=0, le=60,
                                            validation_alias="CRM_PROFILE_FEATURES_REFRESH_SECONDS")
    # Event ingest: the quota per IngestEvents message (events, and bytes encoded; over either
    # fails the call with INVALID_ARGUMENT), and how far in the future an event may happen (the
    # sources' clocks drift).
    events_max_batch_events: int = Field(default=1000, ge=1, le=1000,
                                         validation_alias="CRM_PROFILE_EVENTS_MAX_BATCH_EVENTS")
    events_max_message_bytes: int = Field(default=4 * 1024**2, ge=64 * 1024, le=16 * 1024**2,
                                          validation_alias="CRM_PROFILE_EVENTS_MAX_MESSAGE_BYTES")
    events_max_clock_skew_seconds: int = Field(default=300, ge=0, le=24 * 3600,
                                               validation_alias="CRM_PROFILE_EVENTS_MAX_CLOCK_SKEW_SECONDS")

    @property
    def feed_retention(self) -> timedelta:
        return timedelta(days=self.feed_retention_days)


def feed_payload(customer: Customer) -> object:
    return customer_messages.to_proto(rules.view_for(FEED_READER, customer))


async def wire(runtime: Runtime[ProfileSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    keys = KeyRing.parse(settings.encryption_keys.get_secret_value(), active_key_id=settings.active_key_id)
    audit = AuditWriter(runtime.db, tables.audit_record)
    audit.start()
    runtime.on_close(audit.close)
    vault = PersonalDataVault(keys, BlindIndex(base64.b64decode(settings.blind_index_key.get_secret_value())))
    kit = ProfileKit(
        db=runtime.db,
        vault=vault,
        customers=CustomerRepository(vault),
        outbox=Outbox(tables.outbox_event),
        idempotency=IdempotencyKeys(tables.idempotency_key),
        audit=audit,
        page_tokens=PageTokens(settings.derived_key("profile.page-token")),
    )
    attribute_repository = AttributeRepository(kit.vault)
    history = FieldHistory(repository=HistoryRepository(kit.vault), customers=kit.customers,
                           attributes=attribute_repository, audit=kit.audit, page_tokens=kit.page_tokens,
                           enum_names=ENUM_NAMES, core_max_age_days=settings.stale_max_age_days)
    customer_values = CustomerValues(attributes=attribute_repository, customers=kit.customers)
    retention_repository = RetentionRepository(minimums(settings.retention_minimum_days))
    event_partitions = MonthPartitions()
    events = Events(db=kit.db, repository=EventRepository(), partitions=event_partitions, audit=kit.audit,
                    page_tokens=kit.page_tokens, feed_payload=event_messages.feed_payload,
                    limits=IngestLimits(max_batch_events=settings.events_max_batch_events,
                                        max_message_bytes=settings.events_max_message_bytes,
                                        max_clock_skew=timedelta(seconds=settings.events_max_clock_skew_seconds)),
                    policies=retention_repository)
    await events.prepare()
    feature_writer = FeatureWriter(
        repository=FeatureRepository(), outbox=kit.outbox, feed_payload=feature_messages.to_proto,
        settings=FeatureSettings(reporting_currency=settings.reporting_currency, rates=settings.fx_rates,
                                 rfm_window_days=settings.features_rfm_window_days,
                                 refresh_seconds=settings.features_refresh_seconds))
    shared = {"customers": kit.customers, "outbox": kit.outbox,
              "idempotency": kit.idempotency, "audit": kit.audit, "page_tokens": kit.page_tokens}
    identity = Identity(vault=kit.vault, customers=kit.customers,
                        idempotency=kit.idempotency, audit=kit.audit, page_tokens=kit.page_tokens)
    merges = Merges(**shared, vault=kit.vault, payloads=identity_messages.FeedPayloads(feed_payload),  # type: ignore[arg-type]
                    identity=identity, history=history, features=feature_writer)
    if settings.matcher_enabled:
        matcher = Matcher(db=kit.db, identity=identity, merges=merges, customers=kit.customers,
                          poll_seconds=settings.feed_poll_seconds)
        matcher.start()
        runtime.on_close(matcher.close)
    operations = Operations(runtime.db, tables.operation, kit.page_tokens, kinds=OPERATION_KINDS,
                            poll_seconds=settings.operation_poll_seconds, draining=runtime.draining)
    runner = OperationRunner(operations=operations, service="profile", error_domain=SPEC.error_domain,
                             workers=settings.operation_workers, log_level=settings.log_level)
    runner.start()
    runtime.on_close(lambda: runner.close(grace=settings.shutdown_grace_seconds))
    imports = Imports(
        db=kit.db, idempotency=kit.idempotency, operations=operations, runner=runner, attributes=attribute_repository,
        settings=WorkerSettings(database_url=settings.database_url, encryption_keys=settings.encryption_keys,
                                active_key_id=settings.active_key_id, blind_index_key=settings.blind_index_key),
        enum_values=import_messages.ENUM_VALUES, enum_names=ENUM_NAMES, feed_payload=feed_payload,
        describe=import_messages.describe, error_domain=SPEC.error_domain,
        limits=ImportLimits(max_upload_bytes=settings.import_max_upload_bytes,
                            upload_area_bytes=settings.import_upload_area_bytes,
                            parallel_parts=settings.operation_workers))
    imports.start_housekeeping()
    runtime.on_close(imports.stop_housekeeping)
    feature_refresher = FeatureRefresher(db=kit.db, writer=feature_writer, repository=FeatureRepository())
    feature_refresher.start()
    runtime.on_close(feature_refresher.close)
    erasure_repository = ErasureRepository()
    eraser = CustomerEraser(repository=erasure_repository, history=history)
    key_rotation = KeyRotation(
        db=kit.db, keys=keys, configured_key_id=settings.active_key_id, operations=operations, runner=runner,
        idempotency=kit.idempotency, database_url=settings.database_url, encryption_keys=settings.encryption_keys,
        messages=RotationMessages(privacy_messages.rotation_metadata, privacy_messages.rotation_result))
    await key_rotation.prepare()
    purge_every = timedelta(hours=settings.retention_purge_interval_hours)
    retention = Retention(
        db=kit.db, repository=retention_repository, erasure=erasure_repository, eraser=eraser,
        customers=kit.customers, operations=operations, runner=runner, idempotency=kit.idempotency,
        outbox=kit.outbox, feed=runtime.change_feed(tables.outbox_event, tables.outbox_state,
                                                    poll_seconds=settings.feed_poll_seconds),
        feed_retention=settings.feed_retention, page_tokens=kit.page_tokens,
        messages=PurgeMessages(privacy_messages.purge_metadata, privacy_messages.purge_result, feed_payload),
        partitions_dropped=event_partitions.forget, schedule_every=purge_every if purge_every else None)
    retention.start_schedule()
    runtime.on_close(retention.stop_schedule)
    servicer = ProfileServicer(
        db=kit.db,
        customers=Customers(db=kit.db, repository=kit.customers, outbox=kit.outbox,
                            idempotency=kit.idempotency, audit=kit.audit, page_tokens=kit.page_tokens,
                            feed_payload=feed_payload, values=customer_values, history=history,
                            features=feature_writer),  # type: ignore[arg-type]
        attribute_catalogue=AttributeCatalogue(
            repository=attribute_repository, customers=kit.customers, history=history,
            outbox=kit.outbox, idempotency=kit.idempotency, page_tokens=kit.page_tokens,
            feed_payload=feed_payload),  # type: ignore[arg-type]
        history=history,
        quality=QualityReports(
            repository=QualityRepository(kit.vault), attributes=attribute_repository,
            defaults=Thresholds(min_completeness_percent=settings.quality_min_completeness_percent,
                                max_error_rate_percent=settings.quality_max_error_rate_percent),
            expected_fields=settings.quality_expected_fields, cache_seconds=settings.quality_cache_seconds),
        holdings=Holdings(
            repository=HoldingRepository(), customers=kit.customers, outbox=kit.outbox,
            idempotency=kit.idempotency, audit=kit.audit, page_tokens=kit.page_tokens,
            feed_payload=holding_messages.to_proto, customer_payload=feed_payload, history=history,  # type: ignore[arg-type]
            reporting=ReportingCurrency(settings.reporting_currency, settings.fx_rates), features=feature_writer),
        events=events,
        consents=Consents(**shared, payloads=consent_messages.FeedPayloads(feed_payload), history=history),  # type: ignore[arg-type]
        identity=identity,
        merges=merges,
        relationships=Relationships(**shared, payload=relationship_messages.to_proto),  # type: ignore[arg-type]
        data_subject_requests=DataSubjectRequests(
            db=kit.db, repository=erasure_repository, eraser=eraser, customers=kit.customers,
            policies=retention_repository, audit_log=AuditRepository(), history=history,
            holdings=HoldingRepository(), consents=ConsentRepository(), preferences=PreferenceRepository(),
            relationships=RelationshipRepository(), events=EventRepository(), features=FeatureRepository(),
            outbox=kit.outbox,
            idempotency=kit.idempotency, audit=kit.audit),
        key_rotation=key_rotation,
        audit_log=AuditLog(db=kit.db, repository=AuditRepository(), audit=kit.audit, page_tokens=kit.page_tokens),
        retention=retention,
        feed=runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds),
        imports=imports,
        operations=operations,
        features=Features(writer=feature_writer, repository=FeatureRepository(),
                          idempotency=kit.idempotency, audit=kit.audit, operations=operations, runner=runner,
                          database_url=settings.database_url, feed_payload=feature_messages.to_proto,
                          describe=feature_messages.describe, result=feature_messages.result),
    )
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


SPEC = ServiceSpec(name="profile", settings_type=ProfileSettings, migrations=Path(__file__).parent / "migrations",
                   wire=wire)
