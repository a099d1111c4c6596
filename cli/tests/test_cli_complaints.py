"""`crm complaints` against a real feedback process: a complaint filed from the command line shows
in the queue with both SLA clocks running, is assigned, acknowledged (respond clock met) and resolved
with a note (leaving the queue); bad input exits 1 naming the field, bad arguments exit 2."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from crm.feedback.v1 import complaint_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_cli.commands.complaints import clocks, left
from crmkit.auth import Role
from crmkit.testing import bearer

pytestmark = pytest.mark.slow


def _json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def _customer_in_profile(profile_port: int) -> str:
    """A new customer in profile: feedback refuses complaints for customers profile does not know."""
    customer_id = f"CLI{uuid.uuid4().hex[:8].upper()}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}") as channel:
        await profile_service_pb2_grpc.ProfileServiceStub(channel).CreateCustomer(
            profile_service_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(customer_id=customer_id, full_name="Zhao Lei", branch_id="BJ-001",
                                               customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
                request_id=str(uuid.uuid4())), metadata=bearer(Role.ADMIN))
    return customer_id


def test_a_handler_works_a_complaint_from_queue_to_resolution(crm_feedback, profile_port) -> None:
    customer = asyncio.run(_customer_in_profile(profile_port))

    def file() -> Any:
        return crm_feedback("complaints", "file", customer, "Charged the annual fee twice", "--channel", "branch",
                            "--category", "fees_and_charges", "--priority", "high", "--output", "json")

    # Feedback learns of the customer through profile's feed: wait until it has.
    deadline = time.monotonic() + 30
    while (filing := file()).exit_code != 0 and time.monotonic() < deadline:
        assert "CUSTOMER_NOT_FOUND" in filing.output, filing.output
        time.sleep(0.3)
    filed = _json(filing)
    complaint_id = filed["complaint_id"]
    assert filed["status"] == "COMPLAINT_STATUS_OPEN" and filed["sla"]["respond_by"] <= filed["sla"]["resolve_by"]

    queue = _json(crm_feedback("complaints", "queue", "--customer", customer, "--output", "json"))
    assert [c["complaint_id"] for c in queue] == [complaint_id]
    assert queue[0]["clocks"]["respond"].endswith("left)") and queue[0]["clocks"]["resolve"].endswith("left)")
    table = crm_feedback("complaints", "queue", "--customer", customer)
    assert table.exit_code == 0 and complaint_id in table.stdout and "left" in table.stdout

    assigned = _json(crm_feedback("complaints", "assign", complaint_id, "rm-1001", "--output", "json"))
    assert assigned["assignee"] == "rm-1001"
    acked = _json(crm_feedback("complaints", "acknowledge", complaint_id, "--channel", "call_centre",
                               "--note", "Called back", "--output", "json"))
    assert "respond_time" in acked["sla"] and acked["sla"]["respond_time"] >= filed["create_time"]

    no_note = crm_feedback("complaints", "resolve", complaint_id, "--outcome", "upheld")
    assert no_note.exit_code == 2 and "--note" in no_note.output
    resolved = _json(crm_feedback("complaints", "resolve", complaint_id, "--outcome", "upheld",
                                  "--note", "Fee refunded", "--root-cause", "double_billing", "--output", "json"))
    assert resolved["status"] == "COMPLAINT_STATUS_RESOLVED"
    assert resolved["resolution"]["summary"] == "Fee refunded"
    assert _json(crm_feedback("complaints", "queue", "--customer", customer, "--output", "json")) == []

    shown = crm_feedback("complaints", "show", complaint_id)
    assert shown.exit_code == 0
    assert "resolved" in shown.stdout and "met" in shown.stdout and "Fee refunded" in shown.stdout

    report = _json(crm_feedback("complaints", "breaches", "--days", "7", "--by", "category", "--list",
                                "--output", "json"))
    assert "total" in report["report"] and isinstance(report["breaches"], list)
    assert crm_feedback("complaints", "breaches").exit_code == 0


def test_a_refused_filing_exits_1_naming_the_field(crm_feedback) -> None:
    refused = crm_feedback("complaints", "file", "not a customer id!", "  ", "--channel", "web")
    assert refused.exit_code == 1
    assert "INVALID_ARGUMENT" in refused.output and "complaint.description" in refused.output
    missing = crm_feedback("complaints", "show", str(uuid.uuid4()))
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
    assert crm_feedback("complaints", "file", "C1", "text", "--channel", "pigeon").exit_code == 2


def test_clocks_read_as_time_left_or_overdue() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert left(now + timedelta(hours=2, minutes=5), now) == "2h 05m left"
    assert left(now - timedelta(days=1, hours=3), now) == "1d 3h overdue"
    sla = complaint_pb2.ComplaintSla(respond_breached=True)
    sla.respond_by.FromDatetime(now - timedelta(minutes=30))
    sla.resolve_by.FromDatetime(now + timedelta(days=2))
    sla.resolve_time.FromDatetime(now)
    shown = clocks(sla, now)
    assert shown["respond"] == "2026-12-07 11:30 (0h 30m overdue, BREACHED)"
    assert shown["resolve"] == "2026-12-09 12:00 (met)"
