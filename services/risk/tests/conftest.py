"""Risk test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.type import money_pb2

from crm.risk.v1 import alert_pb2, risk_service_pb2_grpc
from crm_risk import tables
from crm_risk.alerting.service import Alerts
from crm_risk.app import SPEC, alert_feed_payload
from crm_risk.decisions.service import DecisionAudits
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.testing import service_fixtures, with_overrides

HOUR = 3600
DAY = 24 * HOUR

# Snapshot files TrainChurnModel may read; tests write their files here.
TRAINING_DIR = tempfile.mkdtemp(prefix="risk-training-")

# Cross-validation refits the model five more times: the registry tests need the held-out run only.
# Chunks of two customers: a batch test's few customers go through the chunk pipeline.
risk_database, risk_service, risk = service_fixtures(
    SPEC, risk_service_pb2_grpc.RiskServiceStub, stub="risk", feed_poll_seconds=0.05, operation_poll_seconds=0.05,
    training_dir=TRAINING_DIR, training_cv_folds=0, scoring_chunk=2,
    training_fairness_ratio=0.9, alert_escalation_poll_seconds=0, profile_target="", feedback_target="")


@pytest.fixture(scope="session")
def training_dir() -> Path:
    return Path(TRAINING_DIR)


class MovableClock:
    """A clock a test moves (crmkit.clock): "now" when made, until the test changes `now`."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def alerts_on(runtime: Any, clock: MovableClock) -> Alerts:
    """The service's alert use cases on the served database, with a clock the test moves."""
    tokens = PageTokens(runtime.settings.derived_key("risk.page-token"))
    return Alerts(outbox=Outbox(tables.outbox_event), idempotency=IdempotencyKeys(tables.idempotency_key),
                  page_tokens=tokens, decisions=DecisionAudits(page_tokens=tokens), feed_payload=alert_feed_payload,
                  clock=clock, target_share=0.95)


@pytest.fixture
def alerts_of() -> Any:
    """`alerts_of(runtime, clock)`: Alerts on a running service's database with the given clock."""
    return alerts_on


@pytest.fixture
def movable_clock() -> Any:
    """The MovableClock type, to make clocks with."""
    return MovableClock


def make_rule(**overrides: object) -> alert_pb2.AlertRule:
    """A valid large-outflows rule with a fresh id; keyword arguments override fields."""
    rule = alert_pb2.AlertRule(
        alert_rule_id=f"outflow-{uuid.uuid4().hex[:8]}",
        display_name="Large outflow over 500k in 7 days",
        description="Calibrated on 2025 outflows of private-banking customers.",
        kind=alert_pb2.ALERT_RULE_KIND_LARGE_OUTFLOWS,
        severity=alert_pb2.ALERT_SEVERITY_HIGH,
        window=Duration(seconds=7 * DAY),
        large_outflows=alert_pb2.LargeOutflowParameters(
            min_amount=money_pb2.Money(currency_code="CNY", units=500_000), min_balance_share=0.3),
    )
    return with_overrides(rule, overrides)


@pytest.fixture
def new_rule() -> Any:
    return make_rule
