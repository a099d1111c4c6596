"""`crm complaints ...`: a complaint handler's queue with its SLA clocks, over feedback's gRPC contract."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from google.type import interval_pb2
from rich.table import Table

from crm.common.v1 import audit_pb2
from crm.feedback.v1 import (
    channel_pb2,
    classification_pb2,
    complaint_pb2,
    feedback_service_pb2,
    feedback_service_pb2_grpc,
    sla_pb2,
)
from crm_cli import calls, output
from crm_cli.options import output_option, service_options
from crm_cli.proto_values import choices as _names
from crm_cli.proto_values import customer_name
from crm_cli.proto_values import label as _label
from crm_cli.proto_values import time_of as _time
from crm_cli.proto_values import value_of as _value

CALL_TIMEOUT_SECONDS = 30.0
OPEN_STATUSES = (complaint_pb2.COMPLAINT_STATUS_OPEN, complaint_pb2.COMPLAINT_STATUS_ACKNOWLEDGED,
                 complaint_pb2.COMPLAINT_STATUS_IN_PROGRESS, complaint_pb2.COMPLAINT_STATUS_REOPENED)
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="crm complaints")
ORDERS = {"resolve-by": "sla.resolve_by", "respond-by": "sla.respond_by", "newest": "create_time desc",
          "priority": "priority desc"}


CHANNELS = _names(channel_pb2.Channel, "CHANNEL_")
CATEGORIES = _names(classification_pb2.ComplaintCategory, "COMPLAINT_CATEGORY_")
PRIORITIES = _names(complaint_pb2.ComplaintPriority, "COMPLAINT_PRIORITY_")
OUTCOMES = _names(complaint_pb2.ResolutionOutcome, "RESOLUTION_OUTCOME_")
DIMENSIONS = _names(sla_pb2.ReportDimension, "REPORT_DIMENSION_")


def complaint_name(value: str) -> str:
    return value if value.startswith("complaints/") else f"complaints/{value}"


def left(deadline: datetime, now: datetime) -> str:
    """`2h 05m left`, or `1d 3h overdue` once past: a clock a person reads at a glance."""
    seconds = int((deadline - now).total_seconds())
    rest = abs(seconds)
    days, rest = divmod(rest, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours}h" if days else f"{hours}h {minutes:02d}m"
    return f"{text} left" if seconds >= 0 else f"{text} overdue"


def clocks(sla: complaint_pb2.ComplaintSla, now: datetime) -> dict[str, str]:
    """Each clock: its deadline, and time left while it runs, else when it stopped (and if late)."""
    shown: dict[str, str] = {}
    for clock, due, stopped, breached in (("respond", sla.respond_by, sla.respond_time, sla.respond_breached),
                                          ("resolve", sla.resolve_by, sla.resolve_time, sla.resolve_breached)):
        deadline, stop = _time(due), _time(stopped)
        if deadline is None:
            shown[clock] = "-"
            continue
        at = deadline.strftime("%Y-%m-%d %H:%M")
        if stop is not None:
            shown[clock] = f"{at} (met{' late' if breached else ''})"
        else:
            state = left(deadline, now)
            shown[clock] = f"{at} ({state}{', BREACHED' if breached else ''})"
    return shown


def _stub_call(target: str | None, data_dir: Path,
               call: Callable[[feedback_service_pb2_grpc.FeedbackServiceStub, calls.Metadata], Any]) -> Any:
    return calls.call_service("feedback", feedback_service_pb2_grpc.FeedbackServiceStub, target, data_dir, call)



def _show_complaint(complaint: complaint_pb2.Complaint, output_format: str) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(complaint))
        return
    now = datetime.now(UTC)
    table = Table(title=complaint.name, show_header=False)
    table.add_column("Field", style="cyan", no_wrap=True)
    table.add_column("Value", overflow="fold")
    shown = clocks(complaint.sla, now)
    for field, value in (
            ("customer", complaint.customer),
            ("status", _label(complaint_pb2.ComplaintStatus, "COMPLAINT_STATUS_", complaint.status)),
            ("priority", _label(complaint_pb2.ComplaintPriority, "COMPLAINT_PRIORITY_", complaint.priority)),
            ("category", _label(classification_pb2.ComplaintCategory, "COMPLAINT_CATEGORY_", complaint.category)),
            ("channel", _label(channel_pb2.Channel, "CHANNEL_", complaint.channel)),
            ("assignee", complaint.assignee or "unassigned"),
            ("respond by", shown["respond"]),
            ("resolve by", shown["resolve"]),
            ("escalation level", str(complaint.escalation_level)),
            ("description", complaint.description),
            ("resolution", complaint.resolution.summary or "-")):
        table.add_row(field, value)
    for step in complaint.history:
        action = _label(complaint_pb2.ComplaintAction, "COMPLAINT_ACTION_", step.action)
        table.add_row(f"step {step.step_time.ToJsonString()}", f"{action} by {step.actor}"
                      + (f": {step.note}" if step.note else ""))
    output.console().print(table)


@click.group("complaints")
def complaints_group() -> None:
    """Complaints for the people who handle them: the queue with its SLA clocks, the workflow, breaches.

    Every read is audited with purpose ACCESS_PURPOSE_COMPLAINT. Calls carry CRM_TOKEN, else a
    one-hour admin token minted with the local secret (a relationship manager's token sees their book).
    """


@complaints_group.command("queue")
@click.option("--assignee", help="Only this employee's complaints; `unassigned` for those nobody holds.")
@click.option("--customer", help="Only this customer's complaints.")
@click.option("--breached", is_flag=True, help="Only complaints with a breached clock.")
@click.option("--order", type=click.Choice(list(ORDERS)), default="resolve-by", show_default=True,
              help="Earliest deadline first, newest first or highest priority first.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True)
@output_option("table", "json")
@service_options
def queue(assignee: str | None, customer: str | None, breached: bool, order: str, limit: int, output_format: str,
          target: str | None, data_dir: Path) -> None:
    """Open complaints with their respond and resolve deadlines and the time left on each clock.

    \b
    Example:
      crm complaints queue --order respond-by
      crm complaints queue --assignee unassigned --output json
    """
    async def call(stub: Any, metadata: calls.Metadata) -> list[complaint_pb2.Complaint]:
        found: list[complaint_pb2.Complaint] = []
        token = ""
        while len(found) < limit:
            reply = await stub.ListComplaints(feedback_service_pb2.ListComplaintsRequest(
                page_size=min(1000, limit - len(found)), page_token=token, statuses=OPEN_STATUSES,
                assignee=assignee or "", customer=customer_name(customer) if customer else "",
                breached_only=breached, order_by=ORDERS[order], audit=AUDIT),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.complaints
            token = reply.next_page_token
            if not token:
                break
        return found[:limit]

    found = _stub_call(target, data_dir, call)
    now = datetime.now(UTC)
    if output_format == "json":
        output.print_json([output.message_to_dict(c) | {"clocks": clocks(c.sla, now)} for c in found])
        return
    table = Table(title=f"{len(found)} open complaint(s)", show_header=True, header_style="bold")
    for column in ("Complaint", "Customer", "Status", "Priority", "Category", "Assignee", "Respond by",
                   "Resolve by"):
        table.add_column(column, overflow="fold")
    for c in found:
        shown = clocks(c.sla, now)
        breach = c.sla.respond_breached or c.sla.resolve_breached
        table.add_row(c.complaint_id, c.customer.removeprefix("customers/"),
                      _label(complaint_pb2.ComplaintStatus, "COMPLAINT_STATUS_", c.status),
                      _label(complaint_pb2.ComplaintPriority, "COMPLAINT_PRIORITY_", c.priority),
                      _label(classification_pb2.ComplaintCategory, "COMPLAINT_CATEGORY_", c.category),
                      c.assignee or "unassigned", shown["respond"], shown["resolve"],
                      style="red" if breach else None)
    output.console().print(table)


@complaints_group.command("show")
@click.argument("complaint_id")
@output_option("table", "json")
@service_options
def show(complaint_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """One complaint in full: its clocks, assignee, resolution and every workflow step.

    \b
    Example:
      crm complaints show 8d0c2a4e-...
    """
    request = feedback_service_pb2.GetComplaintRequest(name=complaint_name(complaint_id),
                                                       view=complaint_pb2.COMPLAINT_VIEW_FULL, audit=AUDIT)
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.GetComplaint(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show_complaint(reply.complaint, output_format)


@complaints_group.command("file")
@click.argument("customer_id")
@click.argument("description")
@click.option("--channel", type=click.Choice(CHANNELS), required=True, help="Where the complaint came in.")
@click.option("--category", type=click.Choice(CATEGORIES), help="Leave out to have the text classified.")
@click.option("--priority", type=click.Choice(PRIORITIES), help="Leave out for the policy's default.")
@click.option("--branch", "branch_id", default="", help="The branch it concerns.")
@output_option("table", "json")
@service_options
def file(customer_id: str, description: str, channel: str, category: str | None, priority: str | None,
         branch_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """File a complaint in the customer's words; its SLA clocks start now.

    \b
    Example:
      crm complaints file DEMO0001 "Charged an annual fee twice" --channel branch --category fees_and_charges

    Exit status: 0 filed, 1 refused (each field and rule printed), 2 bad arguments.
    """
    complaint = complaint_pb2.Complaint(
        customer=customer_name(customer_id), description=description, branch_id=branch_id,
        channel=_value(channel_pb2.Channel, "CHANNEL_", channel),
        category=_value(classification_pb2.ComplaintCategory, "COMPLAINT_CATEGORY_", category),
        priority=_value(complaint_pb2.ComplaintPriority, "COMPLAINT_PRIORITY_", priority))
    request = feedback_service_pb2.FileComplaintRequest(complaint=complaint, request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.FileComplaint(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show_complaint(reply.complaint, output_format)


@complaints_group.command("assign")
@click.argument("complaint_id")
@click.argument("assignee")
@click.option("--note", default="", help="Why it is handed over.")
@output_option("table", "json")
@service_options
def assign(complaint_id: str, assignee: str, note: str, output_format: str, target: str | None,
           data_dir: Path) -> None:
    """Hand a complaint to an employee.

    \b
    Example:
      crm complaints assign 8d0c2a4e-... rm-1001 --note "her relationship manager"
    """
    request = feedback_service_pb2.AssignComplaintRequest(name=complaint_name(complaint_id), assignee=assignee,
                                                          note=note, request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.AssignComplaint(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show_complaint(reply.complaint, output_format)


@complaints_group.command("acknowledge")
@click.argument("complaint_id")
@click.option("--channel", type=click.Choice(CHANNELS), required=True,
              help="How the customer was answered; stops the respond clock.")
@click.option("--note", default="", help="What they were told.")
@output_option("table", "json")
@service_options
def acknowledge(complaint_id: str, channel: str, note: str, output_format: str, target: str | None,
                data_dir: Path) -> None:
    """Record the first response to the customer: the respond clock stops.

    \b
    Example:
      crm complaints acknowledge 8d0c2a4e-... --channel call_centre --note "Called back, refund checked"
    """
    request = feedback_service_pb2.AcknowledgeComplaintRequest(
        name=complaint_name(complaint_id), response_channel=_value(channel_pb2.Channel, "CHANNEL_", channel),
        note=note, request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.AcknowledgeComplaint(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show_complaint(reply.complaint, output_format)


@complaints_group.command("resolve")
@click.argument("complaint_id")
@click.option("--outcome", type=click.Choice(OUTCOMES), required=True, help="Whether the complaint was upheld.")
@click.option("--note", required=True, help="What was found and done, as told to the customer.")
@click.option("--root-cause", default="", help="A short code, e.g. staff_training.")
@output_option("table", "json")
@service_options
def resolve(complaint_id: str, outcome: str, note: str, root_cause: str, output_format: str, target: str | None,
            data_dir: Path) -> None:
    """Resolve a complaint with a note: the resolve clock stops.

    \b
    Example:
      crm complaints resolve 8d0c2a4e-... --outcome upheld --note "Fee refunded" --root-cause double_billing
    """
    if not note.strip():
        output.fail("--note must say what was found and done", code=2)
    resolution = complaint_pb2.ComplaintResolution(
        outcome=_value(complaint_pb2.ResolutionOutcome, "RESOLUTION_OUTCOME_", outcome), summary=note,
        root_cause=root_cause)
    request = feedback_service_pb2.ResolveComplaintRequest(name=complaint_name(complaint_id), resolution=resolution,
                                                           request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.ResolveComplaint(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show_complaint(reply.complaint, output_format)


def _interval(days: int, now: datetime) -> interval_pb2.Interval:
    interval = interval_pb2.Interval()
    interval.start_time.FromDatetime(now - timedelta(days=days))
    interval.end_time.FromDatetime(now + timedelta(seconds=1))
    return interval


@complaints_group.command("breaches")
@click.option("--days", type=click.IntRange(min=1, max=366), default=30, show_default=True,
              help="Clocks whose deadline fell in the last DAYS days.")
@click.option("--by", "group_by", type=click.Choice(DIMENSIONS), help="Group the report's rows.")
@click.option("--list", "listed", is_flag=True, help="Also list each breach.")
@output_option("table", "json")
@service_options
def breaches(days: int, group_by: str | None, listed: bool, output_format: str, target: str | None,
             data_dir: Path) -> None:
    """The SLA breach report: clocks due, breached, breach rate and overdue times, optionally grouped.

    \b
    Example:
      crm complaints breaches --days 7 --by category --list
    """
    now = datetime.now(UTC)

    async def call(stub: Any, metadata: calls.Metadata) -> tuple[Any, list[sla_pb2.SlaBreach]]:
        report = (await stub.GetSlaBreachReport(feedback_service_pb2.GetSlaBreachReportRequest(
            interval=_interval(days, now), group_by=_value(sla_pb2.ReportDimension, "REPORT_DIMENSION_", group_by)),
            metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).report
        found: list[sla_pb2.SlaBreach] = []
        token = ""
        while listed:
            reply = await stub.ListSlaBreaches(feedback_service_pb2.ListSlaBreachesRequest(
                page_size=1000, page_token=token, due_interval=_interval(days, now)),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.sla_breaches
            token = reply.next_page_token
            if not token:
                break
        return report, found

    report, found = _stub_call(target, data_dir, call)
    if output_format == "json":
        output.print_json({"report": output.message_to_dict(report),
                           "breaches": [output.message_to_dict(b) for b in found]})
        return
    table = Table(title=f"SLA breaches, last {days} day(s)", show_header=True, header_style="bold")
    for column in ("Group", "Respond due", "Respond breached", "Resolve due", "Resolve breached", "Breach rate",
                   "Max overdue"):
        table.add_column(column)
    for row in [*report.rows, report.total]:
        table.add_row(row.key or "total", str(row.respond_due), str(row.respond_breached), str(row.resolve_due),
                      str(row.resolve_breached), f"{row.breach_rate:.1%}", str(row.max_overdue.ToTimedelta()))
    output.console().print(table)
    if listed:
        detail = Table(title=f"{len(found)} breach(es)", show_header=True, header_style="bold")
        for column in ("Complaint", "Clock", "Due", "Overdue", "Priority", "Assignee"):
            detail.add_column(column, overflow="fold")
        for b in found:
            detail.add_row(b.complaint.removeprefix("complaints/"), _label(sla_pb2.SlaClock, "SLA_CLOCK_", b.clock),
                           b.due_time.ToJsonString(), str(b.overdue.ToTimedelta()),
                           _label(complaint_pb2.ComplaintPriority, "COMPLAINT_PRIORITY_", b.priority),
                           b.assignee or "-")
        output.console().print(detail)
