"""`crm alerts ...`: a risk officer's alert queue with its 24-hour response clocks, over risk's gRPC
contract: queue, show, acknowledge, assign, resolve with an outcome, dismiss, the response report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from google.type import interval_pb2
from rich.table import Table

from crm.risk.v1 import alert_pb2, risk_service_pb2, risk_service_pb2_grpc
from crm_cli import calls, output
from crm_cli.commands.complaints import left
from crm_cli.options import output_option, service_options
from crm_cli.proto_values import choices as _names
from crm_cli.proto_values import customer_name
from crm_cli.proto_values import label as _label
from crm_cli.proto_values import time_of as _time
from crm_cli.proto_values import value_of as _value
from crmkit.auth import Role

CALL_TIMEOUT_SECONDS = 30.0
OPEN_STATUSES = (alert_pb2.ALERT_STATUS_OPEN, alert_pb2.ALERT_STATUS_ACKNOWLEDGED,
                 alert_pb2.ALERT_STATUS_INVESTIGATING, alert_pb2.ALERT_STATUS_ESCALATED)
ORDERS = {"due": "due_time", "newest": "trigger_time desc", "severity": "severity desc"}


SEVERITIES = _names(alert_pb2.AlertSeverity, "ALERT_SEVERITY_")
KINDS = _names(alert_pb2.AlertRuleKind, "ALERT_RULE_KIND_")
OUTCOMES = _names(alert_pb2.AlertOutcome, "ALERT_OUTCOME_")
DISMISS_REASONS = _names(alert_pb2.DismissReason, "DISMISS_REASON_")


def alert_name(value: str) -> str:
    return value if value.startswith("alerts/") else f"alerts/{value}"


def clock(alert: alert_pb2.Alert, now: datetime) -> str:
    """The response clock: its deadline, and time left while it runs, else when it stopped (and if late)."""
    due, responded = _time(alert.due_time), _time(alert.respond_time)
    if due is None:
        return "-"
    at = due.strftime("%Y-%m-%d %H:%M")
    if responded is not None:
        return f"{at} (met{' late' if alert.response_breached else ''})"
    if alert.status in (alert_pb2.ALERT_STATUS_RESOLVED, alert_pb2.ALERT_STATUS_DISMISSED):
        return f"{at} (closed{', BREACHED' if alert.response_breached else ''})"
    return f"{at} ({left(due, now)}{', BREACHED' if alert.response_breached else ''})"


def _stub_call(target: str | None, data_dir: Path,
               call: Callable[[risk_service_pb2_grpc.RiskServiceStub, calls.Metadata], Any],
               *, as_subject: str | None = None) -> Any:
    return calls.call_service("risk", risk_service_pb2_grpc.RiskServiceStub, target, data_dir, call,
                              as_subject=as_subject, role=Role.RISK_OFFICER)


def _as_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--as", "as_subject", metavar="SUBJECT",
                        help="Act as this person (a one-hour risk officer token for SUBJECT) instead of "
                             "CRM_TOKEN or the local admin token.")(function)


def _show_alert(alert: alert_pb2.Alert, output_format: str) -> None:
    now = datetime.now(UTC)
    if output_format == "json":
        output.print_json(output.message_to_dict(alert) | {"clock": clock(alert, now)})
        return
    table = Table(title=alert.name, show_header=False)
    table.add_column("Field", style="cyan", no_wrap=True)
    table.add_column("Value", overflow="fold")
    closed = ""
    if alert.outcome:
        closed = _label(alert_pb2.AlertOutcome, "ALERT_OUTCOME_", alert.outcome)
    elif alert.dismiss_reason:
        closed = "dismissed: " + _label(alert_pb2.DismissReason, "DISMISS_REASON_", alert.dismiss_reason)
    for field, value in (
            ("customer", alert.customer),
            ("status", _label(alert_pb2.AlertStatus, "ALERT_STATUS_", alert.status)),
            ("severity", _label(alert_pb2.AlertSeverity, "ALERT_SEVERITY_", alert.severity)),
            ("kind", _label(alert_pb2.AlertRuleKind, "ALERT_RULE_KIND_", alert.kind)),
            ("rule", alert.rule),
            ("summary", alert.summary),
            ("assignee", alert.assignee or "unassigned"),
            ("relationship manager", alert.relationship_manager_id or "-"),
            ("branch", alert.branch_id or "-"),
            ("raised", alert.trigger_time.ToJsonString()),
            ("respond by", clock(alert, now)),
            ("outcome", closed or "-"),
            ("note", alert.close_note or "-"),
            ("decision audit", alert.decision_audit or "-")):
        table.add_row(field, value)
    for e in alert.evidence:
        amount = f" {e.amount.units:,} {e.amount.currency_code}" if e.amount.currency_code else ""
        table.add_row(f"evidence {e.occur_time.ToJsonString()}", f"{e.description}{amount}"
                      + (f" ({e.resource})" if e.resource else ""))
    output.console().print(table)


@click.group("alerts")
def alerts_group() -> None:
    """Risk alerts for risk officers: the queue with each alert's 24-hour response clock, the
    workflow (acknowledge, assign, resolve with an outcome, dismiss) and the response report.

    Calls carry CRM_TOKEN, else a one-hour admin token minted with the local secret; `--as SUBJECT`
    acts as a risk officer (a relationship manager's token sees their own book only).
    """


@alerts_group.command("queue")
@click.option("--assignee", help="Only this officer's alerts; `unassigned` for those nobody holds.")
@click.option("--customer", help="Only this customer's alerts.")
@click.option("--min-severity", type=click.Choice(SEVERITIES), help="Only alerts at least this severe.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only these kinds; repeat the option.")
@click.option("--breached", is_flag=True, help="Only alerts whose response clock was breached.")
@click.option("--all", "include_closed", is_flag=True, help="Resolved and dismissed alerts too.")
@click.option("--order", type=click.Choice(list(ORDERS)), default="due", show_default=True,
              help="Earliest deadline first, newest first or most severe first.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True)
@output_option("table", "json")
@service_options
def queue(assignee: str | None, customer: str | None, min_severity: str | None, kinds: tuple[str, ...],
          breached: bool, include_closed: bool, order: str, limit: int, output_format: str, target: str | None,
          data_dir: Path) -> None:
    """Open alerts with their response deadline and the time left on the clock.

    \b
    Example:
      crm alerts queue --min-severity high
      crm alerts queue --assignee unassigned --output json
    """
    async def call(stub: Any, metadata: calls.Metadata) -> list[alert_pb2.Alert]:
        found: list[alert_pb2.Alert] = []
        token = ""
        while len(found) < limit:
            reply = await stub.ListAlerts(risk_service_pb2.ListAlertsRequest(
                page_size=min(1000, limit - len(found)), page_token=token,
                statuses=() if include_closed else OPEN_STATUSES,
                kinds=[_value(alert_pb2.AlertRuleKind, "ALERT_RULE_KIND_", k) for k in kinds],
                min_severity=_value(alert_pb2.AlertSeverity, "ALERT_SEVERITY_", min_severity),
                assignee=assignee or "", customer=customer_name(customer) if customer else "",
                breached_only=breached, order_by=ORDERS[order]),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.alerts
            token = reply.next_page_token
            if not token:
                break
        return found[:limit]

    found = _stub_call(target, data_dir, call)
    now = datetime.now(UTC)
    if output_format == "json":
        output.print_json([output.message_to_dict(a) | {"clock": clock(a, now)} for a in found])
        return
    title = f"{len(found)} {'' if include_closed else 'open '}alert(s)"
    table = Table(title=title, show_header=True, header_style="bold")
    for column in ("Alert", "Customer", "Severity", "Kind", "Status", "Assignee", "Respond by", "Summary"):
        table.add_column(column, overflow="fold")
    for a in found:
        table.add_row(a.alert_id, a.customer.removeprefix("customers/"),
                      _label(alert_pb2.AlertSeverity, "ALERT_SEVERITY_", a.severity),
                      _label(alert_pb2.AlertRuleKind, "ALERT_RULE_KIND_", a.kind),
                      _label(alert_pb2.AlertStatus, "ALERT_STATUS_", a.status), a.assignee or "unassigned",
                      clock(a, now), a.summary, style="red" if a.response_breached else None)
    output.console().print(table)


@alerts_group.command("show")
@click.argument("alert_id")
@output_option("table", "json")
@service_options
def show(alert_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """One alert in full: its clock, evidence, assignee, outcome and decision audit.

    \b
    Example:
      crm alerts show 5f1d9b2c-...
    """
    request = risk_service_pb2.GetAlertRequest(name=alert_name(alert_id))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.GetAlert(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show_alert(reply.alert, output_format)


def _act(rpc: str, request: Any, output_format: str, as_subject: str | None, target: str | None,
         data_dir: Path) -> None:
    reply = _stub_call(target, data_dir, lambda stub, metadata: getattr(stub, rpc)(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS), as_subject=as_subject)
    _show_alert(reply.alert, output_format)


@alerts_group.command("acknowledge")
@click.argument("alert_id")
@click.option("--etag", default="", help="Only if the alert is still as last read.")
@output_option("table", "json")
@_as_option
@service_options
def acknowledge(alert_id: str, etag: str, output_format: str, as_subject: str | None, target: str | None,
                data_dir: Path) -> None:
    """Take up an open or escalated alert: the response clock stops.

    \b
    Example:
      crm alerts acknowledge 5f1d9b2c-... --as ro-1001
    """
    _act("AcknowledgeAlert", risk_service_pb2.AcknowledgeAlertRequest(
        name=alert_name(alert_id), etag=etag, request_id=str(uuid.uuid4())), output_format, as_subject, target,
        data_dir)


@alerts_group.command("assign")
@click.argument("alert_id")
@click.argument("assignee")
@click.option("--etag", default="", help="Only if the alert is still as last read.")
@output_option("table", "json")
@_as_option
@service_options
def assign(alert_id: str, assignee: str, etag: str, output_format: str, as_subject: str | None, target: str | None,
           data_dir: Path) -> None:
    """Hand an open alert to a risk officer (an acknowledged one becomes investigating).

    \b
    Example:
      crm alerts assign 5f1d9b2c-... ro-1002
    """
    _act("AssignAlert", risk_service_pb2.AssignAlertRequest(
        name=alert_name(alert_id), assignee=assignee, etag=etag, request_id=str(uuid.uuid4())), output_format,
        as_subject, target, data_dir)


@alerts_group.command("resolve")
@click.argument("alert_id")
@click.option("--outcome", type=click.Choice(OUTCOMES), required=True, help="What the investigation found.")
@click.option("--note", required=True, help="What was found and done (no more personal data than the case needs).")
@click.option("--etag", default="", help="Only if the alert is still as last read.")
@output_option("table", "json")
@_as_option
@service_options
def resolve(alert_id: str, outcome: str, note: str, etag: str, output_format: str, as_subject: str | None,
            target: str | None, data_dir: Path) -> None:
    """Close an alert with the outcome of its investigation.

    \b
    Example:
      crm alerts resolve 5f1d9b2c-... --outcome retention_action_taken --note "RM called, rate matched"

    Exit status: 0 resolved, 1 refused (field and rule printed, or the alert already closed), 2 bad arguments.
    """
    if not note.strip():
        output.fail("--note must say what was found and done", code=2)
    _act("ResolveAlert", risk_service_pb2.ResolveAlertRequest(
        name=alert_name(alert_id), outcome=_value(alert_pb2.AlertOutcome, "ALERT_OUTCOME_", outcome), note=note,
        etag=etag, request_id=str(uuid.uuid4())), output_format, as_subject, target, data_dir)


@alerts_group.command("dismiss")
@click.argument("alert_id")
@click.option("--reason", type=click.Choice(DISMISS_REASONS), required=True, help="Why it needs no action.")
@click.option("--note", default="", help="Explanation; required with --reason other.")
@click.option("--etag", default="", help="Only if the alert is still as last read.")
@output_option("table", "json")
@_as_option
@service_options
def dismiss(alert_id: str, reason: str, note: str, etag: str, output_format: str, as_subject: str | None,
            target: str | None, data_dir: Path) -> None:
    """Close an alert that needs no action, with the reason.

    \b
    Example:
      crm alerts dismiss 5f1d9b2c-... --reason false_positive
      crm alerts dismiss 5f1d9b2c-... --reason other --note "customer moved house, confirmed in branch"
    """
    if reason == "other" and not note.strip():
        output.fail("--note is required with --reason other", code=2)
    _act("DismissAlert", risk_service_pb2.DismissAlertRequest(
        name=alert_name(alert_id), reason=_value(alert_pb2.DismissReason, "DISMISS_REASON_", reason), note=note,
        etag=etag, request_id=str(uuid.uuid4())), output_format, as_subject, target, data_dir)


@alerts_group.command("report")
@click.option("--days", type=click.IntRange(min=1, max=400), default=30, show_default=True,
              help="Alerts raised in the last DAYS days.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only these kinds; repeat the option.")
@click.option("--branch", "branch_id", default="", help="Only alerts about customers of this home branch.")
@output_option("table", "json")
@service_options
def report(days: int, kinds: tuple[str, ...], branch_id: str, output_format: str, target: str | None,
           data_dir: Path) -> None:
    """The response report: the share of alerts raised in the period answered within their 24-hour
    clock, against the target.

    \b
    Example:
      crm alerts report --days 7 --kind large_outflows
    """
    now = datetime.now(UTC)
    interval = interval_pb2.Interval()
    interval.start_time.FromDatetime(now - timedelta(days=days))
    interval.end_time.FromDatetime(now + timedelta(seconds=1))
    request = risk_service_pb2.GetAlertResponseReportRequest(
        interval=interval, kinds=[_value(alert_pb2.AlertRuleKind, "ALERT_RULE_KIND_", k) for k in kinds],
        branch_id=branch_id)
    found = _stub_call(target, data_dir, lambda stub, metadata: stub.GetAlertResponseReport(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).report
    if output_format == "json":
        output.print_json(output.message_to_dict(found))
        return
    table = Table(title=f"Alert response, last {days} day(s)", show_header=False)
    table.add_column("Measure", style="cyan")
    table.add_column("Value", justify="right")
    for measure, value in (("raised", f"{found.raised:,}"), ("handled in time", f"{found.handled_in_time:,}"),
                           ("handled late", f"{found.handled_late:,}"),
                           ("unhandled, breached", f"{found.unhandled_breached:,}"),
                           ("pending, clock running", f"{found.pending:,}"),
                           ("handled in time share", f"{found.handled_in_time_share:.1%}"),
                           ("target", f"{found.target_share:.0%}"),
                           ("meets target", "yes" if found.meets_target else "NO")):
        table.add_row(measure, value)
    output.console().print(table)
