"""Wiring of the risk service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from google.protobuf.message import Message
from pydantic import Field, field_validator

from crm.risk.v1 import risk_service_pb2_grpc
from crm_risk import tables
from crm_risk.alerting.escalator import AlertEscalator
from crm_risk.alerting.model import Alert
from crm_risk.alerting.service import Alerts
from crm_risk.alerts.model import AlertRule
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.alerts.service import AlertRules
from crm_risk.api import alert_messages, alert_rule_messages, churn_model_messages, scoring_messages
from crm_risk.api.access import ACCESS, SERVICE
from crm_risk.api.operation_rpcs import KINDS
from crm_risk.api.risk_servicer import RiskServicer
from crm_risk.customers import follower as customer_follower
from crm_risk.customers.repository import CustomerRepository
from crm_risk.customers.rules import AttributeNames
from crm_risk.customers.service import CustomerReadModel
from crm_risk.decisions.service import DecisionAudits
from crm_risk.early_warning.service import EarlyWarnings
from crm_risk.registry.service import ChurnRegistry
from crm_risk.reports import complaints
from crm_risk.reports import rules as report_rules
from crm_risk.reports.rules import CreditAttributes
from crm_risk.reports.service import Reports
from crm_risk.scoring.batch import CHUNK, BatchScoring
from crm_risk.scoring.service import Scoring
from crm_risk.suitability.service import Suitability
from crm_risk.triggers.service import AlertTriggers
from crmkit.app import Runtime, ServiceSpec
from crmkit.clock import utc_now
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import OperationRunner, Operations
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.server import ServiceBinding
from crmkit.settings import GrpcServiceSettings


class RiskSettings(GrpcServiceSettings):
    database_url: str = Field(validation_alias="CRM_RISK_DATABASE_URL")
    port: int = Field(default=50055, validation_alias="CRM_RISK_PORT", ge=0, le=65535)
    feed_poll_seconds: float = Field(default=0.25, gt=0, le=10, validation_alias="CRM_RISK_FEED_POLL_SECONDS")
    # How often WatchOperation looks at its operation, seconds.
    operation_poll_seconds: float = Field(default=0.5, gt=0, le=10, validation_alias="CRM_RISK_OPERATION_POLL_SECONDS")
    # Snapshot files TrainChurnModel may read (interim, until training reads risk's read model);
    # empty: snapshot training is refused.
    training_dir: str = Field(default="", validation_alias="CRM_RISK_TRAINING_DIR")
    # Cross-validation folds run after the held-out evaluation (0 skips it: each fold refits the
    # whole recipe).
    training_cv_folds: int = Field(default=5, ge=0, le=10, validation_alias="CRM_RISK_TRAINING_CV_FOLDS")
    # Fairness report: a group whose selection rate (scored HIGH) is below this ratio of the best
    # group's in its dimension is flagged (0.8: the four-fifths rule).
    training_fairness_ratio: float = Field(default=0.8, gt=0, le=1, validation_alias="CRM_RISK_TRAINING_FAIRNESS_RATIO")
    # How often the clock worker looks for alerts unanswered at their due time, seconds; 0 runs
    # no worker (a deployment where another replica escalates, or tests driving it themselves).
    alert_escalation_poll_seconds: float = Field(default=30, ge=0, le=3600,
                                                 validation_alias="CRM_RISK_ALERT_ESCALATION_POLL_SECONDS")
    # The bank's target share of alerts answered within their response SLA (the response report).
    alert_response_target: float = Field(default=0.95, gt=0, le=1, validation_alias="CRM_RISK_ALERT_RESPONSE_TARGET")
    # Profile's address, whose change feed fills the customer read model; empty: follow no feed
    # (risk alone, e.g. in its own tests). Calls get `peer_deadline_seconds`.
    profile_target: str = Field(default="127.0.0.1:50051", validation_alias="CRM_RISK_PROFILE_TARGET")
    profile_feed_max_backoff_seconds: float = Field(default=10, gt=0, le=300,
                                                    validation_alias="CRM_RISK_PROFILE_FEED_MAX_BACKOFF_SECONDS")
    # Feedback's address, whose change feed brings complaints (credit inputs, churn causes);
    # empty: follow no feed (complaints then count as none). Backs off like profile's.
    feedback_target: str = Field(default="127.0.0.1:50054", validation_alias="CRM_RISK_FEEDBACK_TARGET")
    # Profile custom attributes (ids) holding a customer's risk assessment expiry (DATE) and
    # vulnerability flag (BOOL); empty: not read.
    assessment_expiry_attribute: str = Field(default="risk_assessment_expires_on",
                                             validation_alias="CRM_RISK_ASSESSMENT_EXPIRY_ATTRIBUTE")
    vulnerable_attribute: str = Field(default="vulnerable_customer", validation_alias="CRM_RISK_VULNERABLE_ATTRIBUTE")
    training_workers: int = Field(default=1, ge=1, le=8, validation_alias="CRM_RISK_TRAINING_WORKERS")
    # Customers per chunk of a batch scoring (each written back in a transaction of its own).
    scoring_chunk: int = Field(default=CHUNK, ge=1, le=100_000, validation_alias="CRM_RISK_SCORING_CHUNK")
    # The currency of profile's reporting amounts (assets, balances); amounts in another are
    # taken as unknown. The time zone reports cut days in unless a request names one.
    reporting_currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$",
                                    validation_alias="CRM_RISK_REPORTING_CURRENCY")
    reporting_time_zone: str = Field(default="Asia/Shanghai", validation_alias="CRM_RISK_REPORTING_TIME_ZONE")
    # Profile custom attributes (ids) carrying the credit system's facts (TEXT rating, DECIMAL
    # limit, BOOL overdue, INT arrears days) and the exit reason recorded when a customer leaves
    # (TEXT: natural, deliberate, bank_fault, involuntary); empty: not read.
    credit_rating_attribute: str = Field(default="credit_rating", validation_alias="CRM_RISK_CREDIT_RATING_ATTRIBUTE")
    credit_limit_attribute: str = Field(default="credit_limit", validation_alias="CRM_RISK_CREDIT_LIMIT_ATTRIBUTE")
    overdue_attribute: str = Field(default="credit_overdue", validation_alias="CRM_RISK_OVERDUE_ATTRIBUTE")
    days_past_due_attribute: str = Field(default="max_days_past_due_12m",
                                         validation_alias="CRM_RISK_DAYS_PAST_DUE_ATTRIBUTE")
    exit_reason_attribute: str = Field(default="exit_reason", validation_alias="CRM_RISK_EXIT_REASON_ATTRIBUTE")

    @field_validator("reporting_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if report_rules.zone_of(value) is None:
            raise ValueError("must be an IANA time zone name, e.g. Asia/Shanghai")
        return value

    def credit_attributes(self) -> CreditAttributes:
        return CreditAttributes(credit_rating=self.credit_rating_attribute, credit_limit=self.credit_limit_attribute,
                                overdue=self.overdue_attribute, days_past_due=self.days_past_due_attribute,
                                exit_reason=self.exit_reason_attribute)


def feed_payload(rule: AlertRule) -> Message:
    return alert_rule_messages.to_proto(rule)


def alert_feed_payload(alert: Alert, now: datetime) -> Message:
    return alert_messages.to_proto(alert, now)


async def wire(runtime: Runtime[RiskSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    page_tokens = PageTokens(settings.derived_key("risk.page-token"))
    alert_rules = AlertRules(
        repository=AlertRuleRepository(), outbox=Outbox(tables.outbox_event),
        idempotency=IdempotencyKeys(tables.idempotency_key), page_tokens=page_tokens, feed_payload=feed_payload,
    )
    operations, runner = build_operations(runtime, page_tokens)
    registry = ChurnRegistry(db=runtime.db, operations=operations, runner=runner,
                             idempotency=IdempotencyKeys(tables.idempotency_key), page_tokens=page_tokens,
                             training_dir=settings.training_dir, cv_folds=settings.training_cv_folds,
                             spec_message=churn_model_messages.to_spec, model_message=churn_model_messages.to_proto,
                             outbox=Outbox(tables.outbox_event), fairness_ratio=settings.training_fairness_ratio,
                             clock=utc_now)
    decisions = DecisionAudits(page_tokens=page_tokens)
    alerts = Alerts(outbox=Outbox(tables.outbox_event), idempotency=IdempotencyKeys(tables.idempotency_key),
                    page_tokens=page_tokens, decisions=decisions, feed_payload=alert_feed_payload, clock=utc_now,
                    target_share=settings.alert_response_target)
    suitability = Suitability(customers=CustomerRepository(), decisions=decisions, clock=utc_now)
    scoring = Scoring(registry=registry, customers=CustomerRepository(), decisions=decisions,
                      outbox=Outbox(tables.outbox_event), idempotency=IdempotencyKeys(tables.idempotency_key),
                      feed_payload=scoring_messages.to_proto, clock=utc_now)
    if settings.alert_escalation_poll_seconds:
        escalator = AlertEscalator(db=runtime.db, alerts=alerts, poll_seconds=settings.alert_escalation_poll_seconds)
        escalator.start()
        runtime.on_close(escalator.close)
    triggers = AlertTriggers(alerts=alerts, alert_rules=AlertRuleRepository(), customers=CustomerRepository(),
                             digest_key=settings.derived_key("risk.contact-digest"),
                             currency=settings.reporting_currency)
    follow_profile(runtime, triggers=triggers)
    follow_feedback(runtime, triggers=triggers)
    feed = runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds)
    servicer = RiskServicer(db=runtime.db, alert_rules=alert_rules, feed=feed, registry=registry,
                            operations=operations, alerts=alerts, decisions=decisions,
                            suitability=suitability, scoring=scoring,
                            early_warnings=EarlyWarnings(page_tokens=page_tokens), batch_scoring=BatchScoring(
                                db=runtime.db, scoring=scoring, operations=operations, runner=runner,
                                decisions=decisions, outbox=Outbox(tables.outbox_event),
                                idempotency=IdempotencyKeys(tables.idempotency_key),
                                feed_payload=scoring_messages.to_proto,
                                result_message=scoring_messages.batch_result_to_proto, clock=utc_now,
                                chunk=settings.scoring_chunk),
                            reports=Reports(customers=CustomerRepository(), attributes=settings.credit_attributes(),
                                            time_zone=settings.reporting_time_zone,
                                            currency=settings.reporting_currency, clock=utc_now))
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: risk_service_pb2_grpc.add_RiskServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


def build_operations(runtime: Runtime[RiskSettings], page_tokens: PageTokens) -> tuple[Operations, OperationRunner]:
    """The operations table's service, and the runner whose spawned workers train models."""
    settings = runtime.settings
    operations = Operations(runtime.db, tables.operation, page_tokens, kinds=KINDS,
                            poll_seconds=settings.operation_poll_seconds, draining=runtime.draining)
    runner = OperationRunner(operations=operations, service=runtime.name, error_domain=SPEC.error_domain,
                             workers=settings.training_workers, log_level=settings.log_level)
    runner.start()
    runtime.on_close(lambda: runner.close(grace=settings.shutdown_grace_seconds))
    return operations, runner


def follow_profile(runtime: Runtime[RiskSettings], *, triggers: AlertTriggers) -> None:
    """The customer read model follows profile's feed in the background; closed with the service.
    Alert rules are evaluated on each event it applies, in the same transaction."""
    settings = runtime.settings
    if not settings.profile_target:
        return
    model = CustomerReadModel(repository=CustomerRepository(), attributes=AttributeNames(
        assessment_expiry=settings.assessment_expiry_attribute, vulnerable=settings.vulnerable_attribute,
        credit_overdue=settings.overdue_attribute), reporting_currency=settings.reporting_currency,
        exit_reason_attribute=settings.exit_reason_attribute, on_customer_event=triggers.on_customer_event)
    follower = customer_follower.follow_profile(
        db=runtime.db, model=model, settings=settings, target=settings.profile_target,
        deadline_seconds=settings.peer_deadline_seconds, max_backoff_seconds=settings.profile_feed_max_backoff_seconds,
        after_apply=triggers.after_apply)
    runtime.on_close(follower.close)
    runtime.add_health_details(follower.details)
    runtime.add_health_details(customer_follower.ModelDetails(db=runtime.db, model=model))
    follower.start()


def follow_feedback(runtime: Runtime[RiskSettings], *, triggers: AlertTriggers) -> None:
    """Complaints follow feedback's feed in the background; closed with the service. Complaint
    alert rules are evaluated on each complaint first recorded, in the same transaction."""
    settings = runtime.settings
    if not settings.feedback_target:
        return
    follower = complaints.follow_feedback(
        db=runtime.db, settings=settings, target=settings.feedback_target,
        deadline_seconds=settings.peer_deadline_seconds, max_backoff_seconds=settings.profile_feed_max_backoff_seconds,
        on_new_complaint=triggers.on_new_complaint)
    runtime.on_close(follower.close)
    runtime.add_health_details(follower.details)
    follower.start()


SPEC = ServiceSpec(name="risk", settings_type=RiskSettings, migrations=Path(__file__).parent / "migrations",
                   wire=wire)
