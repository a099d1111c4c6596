"""Wiring of the profile service: its sub-domains built in order (see `wiring`), one servicer."""

from __future__ import annotations

from pathlib import Path

from crm.profile.v1 import profile_service_pb2_grpc
from crm_profile.api.access import ACCESS, SERVICE
from crm_profile.api.profile_servicer import ProfileServicer
from crm_profile.attributes.repository import AttributeRepository
from crm_profile.events.repository import MonthPartitions
from crm_profile.settings import ProfileSettings
from crm_profile.wiring import (
    build_attribute_catalogue,
    build_consents,
    build_customers,
    build_events,
    build_feature_writer,
    build_features,
    build_history,
    build_holdings,
    build_identity,
    build_imports,
    build_kit,
    build_operations,
    build_privacy,
    build_quality,
    build_relationships,
    change_feed,
    key_ring,
    retention_policies,
)
from crmkit.app import Runtime, ServiceSpec
from crmkit.server import ServiceBinding


async def wire(runtime: Runtime[ProfileSettings]) -> list[ServiceBinding]:
    # Built in this order because closers run in reverse: background work stops before what it uses.
    settings = runtime.settings
    keys = key_ring(settings)
    kit = build_kit(runtime, keys)
    feed = change_feed(runtime)
    attributes = AttributeRepository(kit.vault)
    history = build_history(kit, settings, attributes=attributes)
    policies, partitions = retention_policies(settings), MonthPartitions()
    events = await build_events(kit, settings, policies=policies, partitions=partitions)
    feature_writer = build_feature_writer(kit, settings)
    identity, merges = build_identity(runtime, kit, history=history, features=feature_writer)
    operations, runner = build_operations(runtime, kit, error_domain=SPEC.error_domain)
    imports = build_imports(runtime, kit, attributes=attributes, operations=operations, runner=runner,
                            error_domain=SPEC.error_domain)
    features = build_features(runtime, kit, writer=feature_writer, operations=operations, runner=runner)
    privacy = await build_privacy(runtime, kit, keys=keys, feed=feed, history=history, policies=policies,
                                  partitions=partitions, operations=operations, runner=runner)
    servicer = ProfileServicer(
        db=kit.db, feed=feed, operations=operations,
        customers=build_customers(kit, attributes=attributes, history=history, features=feature_writer),
        attribute_catalogue=build_attribute_catalogue(kit, attributes=attributes, history=history),
        history=history,
        quality=build_quality(kit, settings, attributes=attributes),
        holdings=build_holdings(kit, settings, history=history, features=feature_writer),
        events=events,
        consents=build_consents(kit, history=history),
        identity=identity, merges=merges,
        relationships=build_relationships(kit),
        imports=imports,
        features=features,
        data_subject_requests=privacy.data_subject_requests, key_rotation=privacy.key_rotation,
        audit_log=privacy.audit_log, retention=privacy.retention,
    )
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


SPEC = ServiceSpec(name="profile", settings_type=ProfileSettings, migrations=Path(__file__).parent / "migrations",
                   wire=wire)
