"""Wiring of the feedback service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message
from pydantic import Field, SecretStr, model_validator

from crm.feedback.v1 import feedback_service_pb2_grpc
from crm_feedback import tables
from crm_feedback.api import classification_messages, complaint_messages, sla_messages, survey_messages
from crm_feedback.api.access import ACCESS, SERVICE
from crm_feedback.api.feedback_servicer import FeedbackServicer
from crm_feedback.api.operation_rpcs import KINDS
from crm_feedback.classification.service import TextClassifiers
from crm_feedback.complaints import rules
from crm_feedback.complaints.clock_worker import SlaClockWorker
from crm_feedback.complaints.model import Complaint, Step
from crm_feedback.complaints.privacy import DescriptionVault
from crm_feedback.complaints.repository import ComplaintRepository
from crm_feedback.complaints.service import Complaints, PredictCategory, no_prediction
from crm_feedback.customers import follower as customer_follower
from crm_feedback.customers import tiers as tier_follower
from crm_feedback.customers.follower import CustomerDirectory
from crm_feedback.customers.rebuild import ModelRebuild
from crm_feedback.customers.tiers import TierStandards
from crm_feedback.kpis.repository import KpiRepository
from crm_feedback.kpis.service import FeedbackKpis
from crm_feedback.sla import rules as sla_rules
from crm_feedback.sla.breaches import SlaBreaches
from crm_feedback.sla.clock_repository import SlaClockRepository
from crm_feedback.sla.repository import SlaPolicyRepository
from crm_feedback.sla.service import SlaPolicies
from crm_feedback.surveys.repository import SurveyRepository
from crm_feedback.surveys.service import Surveys
from crmkit.app import Runtime, ServiceSpec
from crmkit.audit import AuditWriter
from crmkit.auth import Principal, Role
from crmkit.clock import Clock
from crmkit.crypto import KeyRing
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import OperationRunner, Operations
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.server import ServiceBinding
from crmkit.settings import GrpcServiceSettings

# Whoever reads the change feed sees complaints as a service does: the description masked.
FEED_READER = Principal(subject="system:feed", roles=frozenset({Role.SERVICE}))
# Key id of the development-only key derived from the JWT secret (see `key_ring`).
DEVELOPMENT_KEY_ID = "dev"


class FeedbackSettings(GrpcServiceSettings):
    database_url: str = Field(validation_alias="CRM_FEEDBACK_DATABASE_URL")
    port: int = Field(default=50054, validation_alias="CRM_FEEDBACK_PORT", ge=0, le=65535)
    # AES-256 keys as `key_id:base64,key_id:base64`; the active one seals new descriptions.
    # Required in production; in development and tests a key derived from the JWT secret
    # stands in, so a laptop needs one secret fewer.
    encryption_keys: SecretStr = Field(default=SecretStr(""), validation_alias="CRM_FEEDBACK_ENCRYPTION_KEYS")
    active_key_id: str = Field(default="", validation_alias="CRM_FEEDBACK_ACTIVE_KEY_ID")
    # The default SLA policy (`slaPolicies/default`): elapsed hours from receipt to the first
    # response and to the resolution. Same bounds as any SLA policy: respond within 30 days,
    # resolve within 90 days and not before the response is due.
    default_respond_hours: int = Field(default=48, ge=1, le=30 * 24,
                                       validation_alias="CRM_FEEDBACK_DEFAULT_RESPOND_HOURS")
    default_resolve_hours: int = Field(default=48, ge=1, le=90 * 24,
                                       validation_alias="CRM_FEEDBACK_DEFAULT_RESOLVE_HOURS")
    feed_poll_seconds: float = Field(default=0.25, gt=0, le=10, validation_alias="CRM_FEEDBACK_FEED_POLL_SECONDS")
    # How often the SLA clock worker looks for clocks to escalate or breach; 0 turns it off (a
    # deployment may run it on some replicas only: any number of them is safe).
    sla_clock_seconds: float = Field(default=15.0, ge=0, le=3600, validation_alias="CRM_FEEDBACK_SLA_CLOCK_SECONDS")
    sla_clock_batch: int = Field(default=100, ge=1, le=10_000, validation_alias="CRM_FEEDBACK_SLA_CLOCK_BATCH")
    # Profile's address: its change feed fills the customer read model that FileComplaint checks
    # (customers/rules.py: unknown customers refused while the model is current); empty: no check.
    profile_target: str = Field(default="127.0.0.1:50051", validation_alias="CRM_FEEDBACK_PROFILE_TARGET")
    peer_feed_max_backoff_seconds: float = Field(default=10.0, gt=0, le=300,
                                                 validation_alias="CRM_FEEDBACK_PEER_FEED_MAX_BACKOFF_SECONDS")
    # Segment's address: its change feed fills the value-tier read models whose response times
    # tighten respond deadlines (customers/tiers.py); empty: policies alone.
    segment_target: str = Field(default="127.0.0.1:50052", validation_alias="CRM_FEEDBACK_SEGMENT_TARGET")
    # Where TrainTextClassifier reads the bank's labelled examples (CSV files named by the
    # spec); empty: training is refused (FAILED_PRECONDITION NO_TRAINING_DIRECTORY).
    training_dir: str = Field(default="", validation_alias="CRM_FEEDBACK_TRAINING_DIR")
    training_workers: int = Field(default=1, ge=1, le=8, validation_alias="CRM_FEEDBACK_TRAINING_WORKERS")
    # How often WatchOperation looks at its operation, seconds.
    operation_poll_seconds: float = Field(default=0.5, gt=0, le=10,
                                          validation_alias="CRM_FEEDBACK_OPERATION_POLL_SECONDS")

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackSettings:
        if self.default_resolve_hours < self.default_respond_hours:
            raise ValueError("CRM_FEEDBACK_DEFAULT_RESOLVE_HOURS must be at least CRM_FEEDBACK_DEFAULT_RESPOND_HOURS")
        if not self.encryption_keys.get_secret_value() and not self.is_development:
            raise ValueError("CRM_FEEDBACK_ENCRYPTION_KEYS and CRM_FEEDBACK_ACTIVE_KEY_ID are required in production")
        self.key_ring()  # a malformed key ring stops the start here, with the variable's name
        return self

    def key_ring(self) -> KeyRing:
        spec = self.encryption_keys.get_secret_value()
        if not spec:
            return KeyRing({DEVELOPMENT_KEY_ID: self.derived_key("feedback.development-encryption-key")},
                           active_key_id=DEVELOPMENT_KEY_ID)
        try:
            return KeyRing.parse(spec, active_key_id=self.active_key_id)
        except ValueError as exc:
            raise ValueError(f"CRM_FEEDBACK_ENCRYPTION_KEYS / CRM_FEEDBACK_ACTIVE_KEY_ID: {exc}") from exc

    @property
    def default_sla(self) -> sla_rules.SlaPolicy:
        return sla_rules.default_policy(respond_hours=self.default_respond_hours,
                                        resolve_hours=self.default_resolve_hours)


def feed_payloads(clock: Clock) -> tuple[Callable[[Complaint], Message], Callable[[Complaint, Step], Message]]:
    """The complaint and step payloads of the change feed, breach flags as of the service's now."""
    def feed_payload(complaint: Complaint) -> Message:
        return complaint_messages.to_proto(rules.view_for(FEED_READER, complaint, now=clock()), full=False)

    def step_payload(complaint: Complaint, step: Step) -> Message:
        return complaint_messages.step_event(rules.view_for(FEED_READER, complaint, now=clock()), step)

    return feed_payload, step_payload


@dataclass(frozen=True)
class Parts:
    """The service's collaborators, built once per process (tests build a second set to race workers)."""

    complaints: Complaints
    sla_policies: SlaPolicies
    sla_breaches: SlaBreaches
    surveys: Surveys
    kpis: FeedbackKpis


def assemble(runtime: Runtime[FeedbackSettings], *, customers: CustomerDirectory | None = None,
             tiers: TierStandards | None = None, predict_category: PredictCategory = no_prediction) -> Parts:
    settings = runtime.settings
    audit = AuditWriter(runtime.db, tables.audit_record)
    audit.start()
    runtime.on_close(audit.close)
    outbox, idempotency = Outbox(tables.outbox_event), IdempotencyKeys(tables.idempotency_key)
    page_tokens = PageTokens(settings.derived_key("feedback.page-token"))
    sla_policies = SlaPolicies(repository=SlaPolicyRepository(), outbox=outbox, idempotency=idempotency,
                               page_tokens=page_tokens, configured_default=settings.default_sla,
                               feed_payload=sla_messages.to_proto)
    feed_payload, step_payload = feed_payloads(runtime.clock)
    clocks = SlaClockRepository()
    complaints = Complaints(
        repository=ComplaintRepository(DescriptionVault(settings.key_ring())), outbox=outbox,
        idempotency=idempotency, audit=audit, page_tokens=page_tokens, sla_policies=sla_policies,
        feed_payload=feed_payload, step_payload=step_payload, breach_payload=sla_messages.breach_to_proto,
        clocks=clocks, customers=customers, tiers=tiers, clock=runtime.clock, predict_category=predict_category,
    )
    sla_breaches = SlaBreaches(clocks=clocks, page_tokens=page_tokens, clock=runtime.clock)
    surveys = Surveys(repository=SurveyRepository(settings.key_ring()), outbox=outbox, idempotency=idempotency,
                      audit=audit, page_tokens=page_tokens, survey_payload=survey_messages.survey_to_proto,
                      response_payload=survey_messages.response_to_proto, clock=runtime.clock)
    kpis = FeedbackKpis(repository=KpiRepository(), clocks=clocks, clock=runtime.clock)
    return Parts(complaints=complaints, sla_policies=sla_policies, sla_breaches=sla_breaches, surveys=surveys,
                 kpis=kpis)


def sla_clock_worker(runtime: Runtime[FeedbackSettings], parts: Parts) -> SlaClockWorker:
    return SlaClockWorker(db=runtime.db, complaints=parts.complaints, clock=runtime.clock,
                          poll_seconds=runtime.settings.sla_clock_seconds or 1.0,
                          batch_size=runtime.settings.sla_clock_batch)


async def wire(runtime: Runtime[FeedbackSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    follower = None
    if settings.profile_target:
        rebuild = ModelRebuild(clear=customer_follower.clear, snapshot=customer_follower.profile_snapshot)
        follower = customer_follower.follow_profile(
            db=runtime.db, settings=settings, target=settings.profile_target,
            deadline_seconds=settings.peer_deadline_seconds,
            max_backoff_seconds=settings.peer_feed_max_backoff_seconds, rebuild=rebuild)
        runtime.on_close(follower.close)
        runtime.on_close(rebuild.close)
        runtime.add_health_details(follower.details)
        runtime.add_health_details(rebuild.details)
        follower.start()
    tiers = None
    if settings.segment_target:
        tier_rebuild = ModelRebuild(clear=tier_follower.clear, snapshot=tier_follower.segment_snapshot(runtime.db))
        segment = tier_follower.follow_segment(
            db=runtime.db, settings=settings, target=settings.segment_target,
            deadline_seconds=settings.peer_deadline_seconds,
            max_backoff_seconds=settings.peer_feed_max_backoff_seconds, rebuild=tier_rebuild)
        runtime.on_close(segment.close)
        runtime.on_close(tier_rebuild.close)
        runtime.add_health_details(segment.details)
        runtime.add_health_details(tier_rebuild.details)
        segment.start()
        tiers = TierStandards()
    page_tokens = PageTokens(settings.derived_key("feedback.page-token"))
    operations, runner = build_operations(runtime, page_tokens)
    classifiers = TextClassifiers(
        db=runtime.db, operations=operations, runner=runner, idempotency=IdempotencyKeys(tables.idempotency_key),
        page_tokens=page_tokens, training_dir=settings.training_dir, spec_message=classification_messages.to_spec,
        classifier_message=classification_messages.to_proto)
    parts = assemble(runtime, customers=CustomerDirectory(follower), tiers=tiers,
                     predict_category=classifiers.predict_category)
    if settings.sla_clock_seconds:
        worker = sla_clock_worker(runtime, parts)
        worker.start()
        runtime.on_close(worker.close)
        runtime.add_health_details(worker.details)
    feed = runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds)
    servicer = FeedbackServicer(db=runtime.db, complaints=parts.complaints, sla_policies=parts.sla_policies,
                                sla_breaches=parts.sla_breaches, surveys=parts.surveys, kpis=parts.kpis,
                                feed=feed, classifiers=classifiers, operations=operations)
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: feedback_service_pb2_grpc.add_FeedbackServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


def build_operations(runtime: Runtime[FeedbackSettings], page_tokens: PageTokens
                     ) -> tuple[Operations, OperationRunner]:
    """The operations table's service, and the runner whose spawned workers train classifiers."""
    settings = runtime.settings
    operations = Operations(runtime.db, tables.operation, page_tokens, kinds=KINDS,
                            poll_seconds=settings.operation_poll_seconds, draining=runtime.draining)
    runner = OperationRunner(operations=operations, service=runtime.name, error_domain=SPEC.error_domain,
                             workers=settings.training_workers, log_level=settings.log_level)
    runner.start()
    runtime.on_close(lambda: runner.close(grace=settings.shutdown_grace_seconds))
    return operations, runner


SPEC = ServiceSpec(name="feedback", settings_type=FeedbackSettings,
                   migrations=Path(__file__).parent / "migrations", wire=wire)
