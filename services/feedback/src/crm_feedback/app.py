"""Wiring of the feedback service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

from pathlib import Path

from google.protobuf.message import Message
from pydantic import Field, SecretStr, model_validator

from crm.feedback.v1 import feedback_service_pb2_grpc
from crm_feedback import tables
from crm_feedback.api import classification_messages, complaint_messages, sla_messages
from crm_feedback.api.access import ACCESS, SERVICE
from crm_feedback.api.feedback_servicer import FeedbackServicer
from crm_feedback.api.operation_rpcs import KINDS
from crm_feedback.classification.service import TextClassifiers
from crm_feedback.complaints import rules
from crm_feedback.complaints.model import Complaint, Step
from crm_feedback.complaints.privacy import DescriptionVault
from crm_feedback.complaints.repository import ComplaintRepository
from crm_feedback.complaints.service import Complaints, utc_now
from crm_feedback.sla import rules as sla_rules
from crm_feedback.sla.repository import SlaPolicyRepository
from crm_feedback.sla.service import SlaPolicies
from crmkit.app import Runtime, ServiceSpec
from crmkit.audit import AuditWriter
from crmkit.auth import Principal, Role
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


def feed_payload(complaint: Complaint) -> Message:
    return complaint_messages.to_proto(rules.view_for(FEED_READER, complaint, now=utc_now()), full=False)


def step_payload(complaint: Complaint, step: Step) -> Message:
    return complaint_messages.step_event(rules.view_for(FEED_READER, complaint, now=utc_now()), step)


async def wire(runtime: Runtime[FeedbackSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    audit = AuditWriter(runtime.db, tables.audit_record)
    audit.start()
    runtime.on_close(audit.close)
    outbox, idempotency = Outbox(tables.outbox_event), IdempotencyKeys(tables.idempotency_key)
    page_tokens = PageTokens(settings.derived_key("feedback.page-token"))
    sla_policies = SlaPolicies(repository=SlaPolicyRepository(), outbox=outbox, idempotency=idempotency,
                               page_tokens=page_tokens, configured_default=settings.default_sla,
                               feed_payload=sla_messages.to_proto)
    operations, runner = build_operations(runtime, page_tokens)
    classifiers = TextClassifiers(
        db=runtime.db, operations=operations, runner=runner, idempotency=idempotency, page_tokens=page_tokens,
        training_dir=settings.training_dir, spec_message=classification_messages.to_spec,
        classifier_message=classification_messages.to_proto)
    complaints = Complaints(
        repository=ComplaintRepository(DescriptionVault(settings.key_ring())), outbox=outbox,
        idempotency=idempotency, audit=audit, page_tokens=page_tokens, sla_policies=sla_policies,
        feed_payload=feed_payload, step_payload=step_payload, predict_category=classifiers.predict_category,
    )
    feed = runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds)
    # RPCs not served yet stay abstract in the typed stubs; at run time the generated base
    # answers them UNIMPLEMENTED.
    servicer = FeedbackServicer(db=runtime.db, complaints=complaints, sla_policies=sla_policies, feed=feed,  # type: ignore[abstract]  # grpc stubs: mypy-protobuf marks every RPC abstract
                                classifiers=classifiers, operations=operations)
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
