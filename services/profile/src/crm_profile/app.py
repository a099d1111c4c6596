"""Wiring of the profile service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr

from crm.profile.v1 import profile_service_pb2_grpc
from crm_profile import tables
from crm_profile.api import customer_messages
from crm_profile.api.access import ACCESS, SERVICE
from crm_profile.api.profile_servicer import ProfileServicer
from crm_profile.customers import rules
from crm_profile.customers.model import Customer
from crm_profile.customers.privacy import PersonalDataVault
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.service import Customers
from crm_profile.kit import ProfileKit
from crmkit.app import Runtime, ServiceSpec
from crmkit.audit import AuditWriter
from crmkit.auth import Principal, Role
from crmkit.crypto import BlindIndex, KeyRing
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import ChangeFeed, Outbox
from crmkit.pagination import PageTokens
from crmkit.server import ServiceBinding
from crmkit.settings import ServiceSettings

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
    kit = ProfileKit(
        db=runtime.db,
        vault=PersonalDataVault(keys, BlindIndex(base64.b64decode(settings.blind_index_key.get_secret_value()))),
        outbox=Outbox(tables.outbox_event),
        idempotency=IdempotencyKeys(tables.idempotency_key),
        audit=audit,
        page_tokens=PageTokens(settings.derived_key("profile.page-token")),
    )
    servicer = ProfileServicer(
        customers=Customers(db=kit.db, repository=CustomerRepository(kit.vault), outbox=kit.outbox,
                            idempotency=kit.idempotency, audit=kit.audit, page_tokens=kit.page_tokens,
                            feed_payload=feed_payload),  # type: ignore[arg-type]
        feed=ChangeFeed(runtime.db, tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds),
    )
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


SPEC = ServiceSpec(name="profile", settings_type=ProfileSettings, migrations=Path(__file__).parent / "migrations",
                   wire=wire)
