"""Wiring of the segment service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1.change_event_pb2 import ChangeEvent
from crm.segment.v1 import segment_service_pb2_grpc
from crm_segment import tables
from crm_segment.api import (
    classification_messages,
    cluster_messages,
    crosssell_messages,
    ltv_messages,
    membership_messages,
    segment_messages,
)
from crm_segment.api.access import ACCESS, SERVICE
from crm_segment.api.operation_rpcs import KINDS
from crm_segment.api.segment_servicer import SegmentServicer
from crm_segment.classifications.service import Classifications, ClassificationSchedule
from crm_segment.clusters.service import Clustering
from crm_segment.clv.service import LifetimeValues
from crm_segment.crosssell.service import CrossSell
from crm_segment.features import follower as profile_follower
from crm_segment.features import peer_features
from crm_segment.features import rules as feature_rules
from crm_segment.features.rebuild import FeatureRebuild
from crm_segment.features.repository import FeatureRepository
from crm_segment.features.service import FeatureReadModel
from crm_segment.membership.service import Membership
from crm_segment.realtime.service import RealTimeMembership
from crm_segment.segments import rules
from crm_segment.segments.repository import SegmentRepository
from crm_segment.segments.service import Segments
from crmkit.app import Runtime, ServiceSpec
from crmkit.audit import AuditWriter
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import OperationRunner, Operations
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.server import ServiceBinding
from crmkit.settings import GrpcServiceSettings


class SegmentSettings(GrpcServiceSettings):
    database_url: str = Field(validation_alias="CRM_SEGMENT_DATABASE_URL")
    port: int = Field(default=50052, validation_alias="CRM_SEGMENT_PORT", ge=0, le=65535)
    feed_poll_seconds: float = Field(default=0.25, gt=0, le=10, validation_alias="CRM_SEGMENT_FEED_POLL_SECONDS")
    # Profile's address, whose change feed fills the feature read model; empty follows no feed
    # (tests of segment alone). Calls get `peer_deadline_seconds`.
    profile_target: str = Field(default="127.0.0.1:50051", validation_alias="CRM_SEGMENT_PROFILE_TARGET")
    # Feedback's and risk's addresses, whose feeds give the complaint and churn-score features;
    # empty follows none.
    feedback_target: str = Field(default="127.0.0.1:50054", validation_alias="CRM_SEGMENT_FEEDBACK_TARGET")
    risk_target: str = Field(default="127.0.0.1:50055", validation_alias="CRM_SEGMENT_RISK_TARGET")
    # Campaign's address, whose feed (dispatches, offer responses) gives the contact and response
    # features; empty follows none.
    campaign_target: str = Field(default="127.0.0.1:50053", validation_alias="CRM_SEGMENT_CAMPAIGN_TARGET")
    # Longest wait between reconnections to profile's feed (and the others'), seconds.
    profile_feed_max_backoff_seconds: float = Field(default=10.0, gt=0, le=300,
                                                    validation_alias="CRM_SEGMENT_PROFILE_FEED_MAX_BACKOFF_SECONDS")
    # How often WatchOperation looks at its operation, seconds.
    operation_poll_seconds: float = Field(default=0.5, gt=0, le=10,
                                          validation_alias="CRM_SEGMENT_OPERATION_POLL_SECONDS")
    # The scheduled classification run: at least this often (a tier definition change calls
    # for one sooner), looked for every `classification_check_seconds`, in batches of customers.
    classification_interval_seconds: float = Field(default=86_400, gt=0,
                                                   validation_alias="CRM_SEGMENT_CLASSIFICATION_INTERVAL_SECONDS")
    classification_check_seconds: float = Field(default=60, gt=0,
                                                validation_alias="CRM_SEGMENT_CLASSIFICATION_CHECK_SECONDS")
    classification_batch_size: int = Field(default=1000, ge=1, le=100_000,
                                           validation_alias="CRM_SEGMENT_CLASSIFICATION_BATCH_SIZE")
    # Clustering and association runs at once (each holds a worker process and a population's
    # values); more are refused with RESOURCE_EXHAUSTED.
    max_analytics_jobs: int = Field(default=2, ge=1, le=32, validation_alias="CRM_SEGMENT_MAX_ANALYTICS_JOBS")


async def wire(runtime: Runtime[SegmentSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    rules.load_parser()
    feed = runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds)
    idempotency = IdempotencyKeys(tables.idempotency_key)
    page_tokens = PageTokens(settings.derived_key("segment.page-token"))
    segments = Segments(
        repository=SegmentRepository(), outbox=Outbox(tables.outbox_event), idempotency=idempotency,
        page_tokens=page_tokens, feed=feed, feed_payload=segment_messages.to_proto,
    )
    operations, runner = build_operations(runtime, page_tokens)
    membership = Membership(db=runtime.db, segments=SegmentRepository(), operations=operations, runner=runner,
                            idempotency=idempotency, page_tokens=page_tokens,
                            result_message=membership_messages.materialised_to_proto,
                            change_message=membership_messages.change_to_proto)
    # Reads of one customer's classification or value are audited (who, which customer, why).
    audit = AuditWriter(runtime.db, tables.audit_record)
    audit.start()
    runtime.on_close(audit.close)
    lifetime_values = LifetimeValues(db=runtime.db, operations=operations, runner=runner, idempotency=idempotency,
                                     model_message=ltv_messages.model_to_proto, audit=audit)
    classifications = Classifications(
        outbox=Outbox(tables.outbox_event), lifetime_values=lifetime_values, page_tokens=page_tokens,
        classification_message=classification_messages.classification_to_proto,
        tier_message=classification_messages.tier_to_proto,
        thresholds_message=classification_messages.thresholds_to_proto, audit=audit)
    schedule_classification(runtime, classifications)
    clustering = Clustering(db=runtime.db, database_url=settings.database_url, segments=SegmentRepository(),
                            operations=operations, runner=runner, idempotency=idempotency, page_tokens=page_tokens,
                            result_message=cluster_messages.run_to_proto, max_jobs=settings.max_analytics_jobs)
    crosssell = CrossSell(db=runtime.db, database_url=settings.database_url, segments=SegmentRepository(),
                          operations=operations, runner=runner, idempotency=idempotency, page_tokens=page_tokens,
                          result_message=crosssell_messages.run_to_proto, max_jobs=settings.max_analytics_jobs)
    realtime = RealTimeMembership(outbox=Outbox(tables.outbox_event),
                                  change_message=membership_messages.change_to_proto)
    follow_profile(runtime, classifications, realtime, operations=operations, runner=runner)
    follow_peers(runtime, realtime)
    servicer = SegmentServicer(db=runtime.db, segments=segments, membership=membership,
                               operations=operations, clustering=clustering, crosssell=crosssell,
                               classifications=classifications, lifetime_values=lifetime_values)
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


def build_operations(runtime: Runtime[SegmentSettings], page_tokens: PageTokens) -> tuple[Operations, OperationRunner]:
    """The operations table's service, and its runner: materialisations are SQL work run in the
    service's loop; clustering and association runs go to the runner's worker process."""
    settings = runtime.settings
    operations = Operations(runtime.db, tables.operation, page_tokens, kinds=KINDS,
                            poll_seconds=settings.operation_poll_seconds, draining=runtime.draining)
    runner = OperationRunner(operations=operations, service=runtime.name, error_domain=SPEC.error_domain,
                             workers=1, log_level=settings.log_level)
    runner.start()
    runtime.on_close(lambda: runner.close(grace=settings.shutdown_grace_seconds))
    return operations, runner


def schedule_classification(runtime: Runtime[SegmentSettings], classifications: Classifications) -> None:
    settings = runtime.settings
    schedule = ClassificationSchedule(
        db=runtime.db, classifications=classifications,
        interval=timedelta(seconds=settings.classification_interval_seconds),
        check_seconds=settings.classification_check_seconds, batch_size=settings.classification_batch_size)
    schedule.start()
    runtime.on_close(schedule.close)


def follow_profile(runtime: Runtime[SegmentSettings], classifications: Classifications,
                   realtime: RealTimeMembership, *, operations: Operations, runner: OperationRunner) -> None:
    """The feature read model follows profile's feed in the background; closed with the service.
    Each applied change reclassifies its customer, then re-evaluates their real-time segments
    (which may read the classification), in the transaction of the change. An expired cursor
    starts its rebuild from profile's List RPCs as an operation."""
    settings = runtime.settings
    if not settings.profile_target:
        return
    repository = FeatureRepository()
    model = FeatureReadModel(repository=repository)
    rebuild = FeatureRebuild(db=runtime.db, model=model, repository=repository, operations=operations, runner=runner)
    follower = profile_follower.follow_profile(
        db=runtime.db, model=model, settings=settings, target=settings.profile_target,
        deadline_seconds=settings.peer_deadline_seconds, max_backoff_seconds=settings.profile_feed_max_backoff_seconds,
        after_apply=functools.partial(_after_apply, classifications, realtime), on_expired=rebuild.start)
    rebuild.follower = follower
    runtime.on_close(follower.close)
    runtime.add_health_details(follower.details)
    runtime.add_health_details(profile_follower.ModelDetails(db=runtime.db, model=model))
    follower.start()


def follow_peers(runtime: Runtime[SegmentSettings], realtime: RealTimeMembership) -> None:
    """Complaint, churn-score and campaign-contact features follow feedback's, risk's and
    campaign's feeds, each in the
    background; a change re-evaluates its customer's real-time segments in its transaction."""
    settings = runtime.settings
    for target, follow in ((settings.feedback_target, peer_features.follow_feedback),
                           (settings.risk_target, peer_features.follow_risk),
                           (settings.campaign_target, peer_features.follow_campaign)):
        if not target:
            continue
        follower = follow(db=runtime.db, settings=settings, target=target,
                          deadline_seconds=settings.peer_deadline_seconds,
                          max_backoff_seconds=settings.profile_feed_max_backoff_seconds,
                          reevaluate=realtime.evaluate_customer)
        runtime.on_close(follower.close)
        runtime.add_health_details(follower.details)
        follower.start()


async def _after_apply(classifications: Classifications, realtime: RealTimeMembership, connection: AsyncConnection,
                       event: ChangeEvent) -> None:
    # A transaction only adds to the per-day totals, which no rule and no class reads directly;
    # profile's refreshed features follow it on the feed and reclassify then (the bulk of an
    # event stream costs one upsert each, not a reclassification and a re-evaluation).
    if event.resource_type == feature_rules.EVENT_TYPE:
        return
    await classifications.on_change(connection, event)
    await realtime.evaluate(connection, event)


SPEC = ServiceSpec(name="segment", settings_type=SegmentSettings, migrations=Path(__file__).parent / "migrations",
                   wire=wire)
