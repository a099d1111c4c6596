"""`crm alerts` against real profile and risk processes: a customer's contact details changed in
profile raise an alert in risk (through profile's feed and a contact-detail-changes rule); it shows in
the queue with its 24-hour clock running, is acknowledged (clock met), assigned and resolved with an
outcome, a second one is dismissed; closed alerts refuse more steps (exit 1), bad arguments exit 2,
a service down exits 1, and the response report counts them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.duration_pb2 import Duration

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.risk.v1 import alert_pb2, risk_service_pb2, risk_service_pb2_grpc
from crm_cli.commands.alerts import clock
from crmkit.auth import Role
from crmkit.testing import bearer, free_port

pytestmark = pytest.mark.slow

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="cli test")


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def _contact_rule(risk_port: int) -> None:
    """A rule raising an alert after two changes of a customer's contact details within a week."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{risk_port}") as channel:
        await risk_service_pb2_grpc.RiskServiceStub(channel).CreateAlertRule(risk_service_pb2.CreateAlertRuleRequest(
            alert_rule=alert_pb2.AlertRule(
                alert_rule_id=f"contact-{uuid.uuid4().hex[:8]}", display_name="Contact details changed twice",
                kind=alert_pb2.ALERT_RULE_KIND_CONTACT_DETAIL_CHANGES, severity=alert_pb2.ALERT_SEVERITY_HIGH,
                window=Duration(seconds=7 * 86400), enabled=True,
                contact_detail_changes=alert_pb2.ContactDetailChangeParameters(min_changes=2)),
            request_id=str(uuid.uuid4())), metadata=bearer(Role.RISK_OFFICER, subject="ro-1"))


async def _customer_changing_contacts(profile_port: int) -> str:
    """A new customer in profile whose phone, then email, change: two changes on profile's feed (which
    carries contact details masked, so each change shows in what the mask keeps)."""
    customer_id = f"CLI{uuid.uuid4().hex[:8].upper()}"
    admin = bearer(Role.ADMIN)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}") as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        await stub.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(customer_id=customer_id, full_name="Zhao Lei", branch_id="BJ-001",
                                           customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
                                           relationship_manager_id="rm-1001",
                                           mobile_phone="+8613812345678", email="zhao.lei@example.com"),
            request_id=str(uuid.uuid4())), metadata=admin)
        await asyncio.sleep(1.0)  # risk takes the first event as the baseline
        for field, value in (("mobile_phone", "+8613812340001"), ("email", "lei.zhao@example.net")):
            await stub.UpdateCustomer(profile_service_pb2.UpdateCustomerRequest(
                customer=customer_pb2.Customer(name=f"customers/{customer_id}", **{field: value}),
                update_mask=field_mask_pb2.FieldMask(paths=[field]), audit=AUDIT), metadata=admin)
    return customer_id


def _raised(crm_risk: Any, profile_port: int) -> tuple[str, str]:
    """A customer whose contact changes raised an open alert, and that alert's id."""
    customer = asyncio.run(_customer_changing_contacts(profile_port))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _json(crm_risk("alerts", "queue", "--customer", customer, "--output", "json"))
        if found:
            return customer, found[0]["alert_id"]
        time.sleep(0.3)
    raise AssertionError(f"no alert raised for {customer}")


def test_an_officer_works_an_alert_from_queue_to_resolution(crm_risk, profile_port, risk_port) -> None:
    asyncio.run(_contact_rule(risk_port))
    customer, alert_id = _raised(crm_risk, profile_port)

    [queued] = _json(crm_risk("alerts", "queue", "--customer", customer, "--min-severity", "high",
                              "--output", "json"))
    assert queued["status"] == "ALERT_STATUS_OPEN" and queued["clock"].endswith("left)")
    assert queued["clock"].startswith(queued["due_time"][:10])
    table = crm_risk("alerts", "queue", "--customer", customer)
    assert table.exit_code == 0 and alert_id in table.stdout and "23h" in table.stdout

    acked = _json(crm_risk("alerts", "acknowledge", alert_id, "--as", "ro-1001", "--output", "json"))
    assert acked["status"] == "ALERT_STATUS_ACKNOWLEDGED" and acked["clock"].endswith("(met)")
    again = crm_risk("alerts", "acknowledge", alert_id)
    assert again.exit_code == 1 and "ALERT_ALREADY_ACKNOWLEDGED" in again.output
    assigned = _json(crm_risk("alerts", "assign", alert_id, "ro-1002", "--output", "json"))
    assert assigned["assignee"] == "ro-1002" and assigned["status"] == "ALERT_STATUS_INVESTIGATING"
    assert crm_risk("alerts", "resolve", alert_id, "--outcome", "legitimate_activity", "--note", " ").exit_code == 2
    resolved = _json(crm_risk("alerts", "resolve", alert_id, "--outcome", "legitimate_activity",
                              "--note", "Customer moved, confirmed in branch", "--output", "json"))
    assert resolved["status"] == "ALERT_STATUS_RESOLVED"
    assert resolved["outcome"] == "ALERT_OUTCOME_LEGITIMATE_ACTIVITY"
    assert _json(crm_risk("alerts", "queue", "--customer", customer, "--output", "json")) == []
    closed = crm_risk("alerts", "dismiss", alert_id, "--reason", "duplicate")
    assert closed.exit_code == 1 and "ALERT_CLOSED" in closed.output

    shown = crm_risk("alerts", "show", alert_id)
    assert shown.exit_code == 0, shown.output
    assert "resolved" in shown.stdout and "legitimate activity" in shown.stdout and "changed" in shown.stdout
    everything = _json(crm_risk("alerts", "queue", "--customer", customer, "--all", "--output", "json"))
    assert [a["alert_id"] for a in everything] == [alert_id]

    _, other = _raised(crm_risk, profile_port)
    assert crm_risk("alerts", "dismiss", other, "--reason", "other").exit_code == 2
    dismissed = _json(crm_risk("alerts", "dismiss", other, "--reason", "false_positive", "--output", "json"))
    # A dismissal answers the alert: its clock stops.
    assert dismissed["status"] == "ALERT_STATUS_DISMISSED" and dismissed["clock"].endswith("(met)")

    report = _json(crm_risk("alerts", "report", "--days", "1", "--kind", "contact_detail_changes",
                            "--output", "json"))
    assert int(report["raised"]) >= 2 and int(report["handled_in_time"]) >= 1
    assert crm_risk("alerts", "report").exit_code == 0


def test_bad_input_exits_1_or_2_and_a_service_down_exits_1(crm_risk) -> None:
    missing = crm_risk("alerts", "show", str(uuid.uuid4()))
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
    too_long = crm_risk("alerts", "assign", str(uuid.uuid4()), "x" * 65)
    assert too_long.exit_code == 1 and "assignee" in too_long.output
    assert crm_risk("alerts", "resolve", "a1", "--outcome", "shrug", "--note", "n").exit_code == 2
    assert crm_risk("alerts", "queue", "--order", "random").exit_code == 2
    assert crm_risk("alerts", "report", "--days", "401").exit_code == 2
    down = crm_risk("alerts", "queue", "--target", f"127.0.0.1:{free_port()}")
    assert down.exit_code == 1 and "UNAVAILABLE" in down.output


def test_the_clock_reads_as_time_left_met_or_closed() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    alert = alert_pb2.Alert(status=alert_pb2.ALERT_STATUS_OPEN)
    alert.due_time.FromDatetime(now + timedelta(hours=23, minutes=30))
    assert clock(alert, now) == "2026-12-08 11:30 (23h 30m left)"
    alert.response_breached = True
    assert clock(alert, now + timedelta(days=1)) == "2026-12-08 11:30 (0h 30m overdue, BREACHED)"
    alert.respond_time.FromDatetime(now + timedelta(days=1))
    assert clock(alert, now) == "2026-12-08 11:30 (met late)"
