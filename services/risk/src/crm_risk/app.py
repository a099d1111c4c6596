"""Wiring of the risk service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

from pathlib import Path

from google.protobuf.message import Message
from pydantic import Field

from crm.risk.v1 import risk_service_pb2_grpc
from crm_risk import tables
from crm_risk.alerts.model import AlertRule
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.alerts.service import AlertRules
from crm_risk.api import alert_rule_messages
from crm_risk.api.access import ACCESS, SERVICE
from crm_risk.api.risk_servicer import RiskServicer
from crmkit.app import Runtime, ServiceSpec
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.server import ServiceBinding
from crmkit.settings import GrpcServiceSettings


class RiskSettings(GrpcServiceSettings):
    database_url: str = Field(validation_alias="CRM_RISK_DATABASE_URL")
    port: int = Field(default=50055, validation_alias="CRM_RISK_PORT", ge=0, le=65535)
    feed_poll_seconds: float = Field(default=0.25, gt=0, le=10, validation_alias="CRM_RISK_FEED_POLL_SECONDS")


def feed_payload(rule: AlertRule) -> Message:
    return alert_rule_messages.to_proto(rule)


async def wire(runtime: Runtime[RiskSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    alert_rules = AlertRules(
        repository=AlertRuleRepository(), outbox=Outbox(tables.outbox_event),
        idempotency=IdempotencyKeys(tables.idempotency_key),
        page_tokens=PageTokens(settings.derived_key("risk.page-token")), feed_payload=feed_payload,
    )
    feed = runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds)
    # RPCs not served yet stay abstract in the typed stubs; at run time the generated base
    # answers them UNIMPLEMENTED.
    servicer = RiskServicer(db=runtime.db, alert_rules=alert_rules, feed=feed)  # type: ignore[abstract]  # grpc stubs: mypy-protobuf marks every RPC abstract
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: risk_service_pb2_grpc.add_RiskServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


SPEC = ServiceSpec(name="risk", settings_type=RiskSettings, migrations=Path(__file__).parent / "migrations",
                   wire=wire)
