"""`crm segments ...`: an analyst's segment work over segment's gRPC contract."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from crm.common.v1 import operation_pb2
from crm.segment.v1 import segment_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_cli import calls, output
from crm_cli.operations import SERVICES, state_name, summary, watch
from crm_cli.options import output_option, service_options

CALL_TIMEOUT_SECONDS = 30.0


def _segment_name(value: str) -> str:
    """`segments/<id>` from either that or the bare id."""
    return value if value.startswith("segments/") else f"segments/{value}"


def _customer_name(value: str) -> str:
    return value if value.startswith("customers/") else f"customers/{value}"


def _stub_call(target: str | None, data_dir: Path,
               call: Callable[[segment_service_pb2_grpc.SegmentServiceStub, calls.Metadata], Any]) -> Any:
    return calls.call_service("segment", segment_service_pb2_grpc.SegmentServiceStub, target, data_dir, call)



def _show(message: Any, output_format: str, *, title: str | None = None) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(message))
    else:
        output.console().print(output.message_table(message, title=title))


def _issues(issues: Any) -> list[str]:
    return [f"{segment_pb2.RuleIssueSeverity.Name(i.severity).removeprefix('RULE_ISSUE_SEVERITY_')} "
            f"{i.line}:{i.column} {i.reason}: {i.message}" for i in issues]


@click.group("segments")
def segments_group() -> None:
    """Rule segments: define, validate, preview, materialise, list members, explain.

    Rules are CEL over the feature catalogue (`crm segments features` lists it). Calls carry
    CRM_TOKEN, else a one-hour admin token minted with the local secret.
    """


def _rule(rule: str | None, rule_file: Path | None) -> str:
    if (rule is None) == (rule_file is None):
        output.fail("give the rule either as RULE or with --rule-file, not both", code=2)
    return rule if rule is not None else rule_file.read_text(encoding="utf-8").strip()  # type: ignore[union-attr]


@segments_group.command("list")
@output_option("table", "json")
@service_options
def list_segments(output_format: str, target: str | None, data_dir: Path) -> None:
    """Every segment, with its rule and last materialised size.

    \b
    Example:
      crm segments list --output json
    """
    async def call(stub: Any, metadata: calls.Metadata) -> list[segment_pb2.Segment]:
        found: list[segment_pb2.Segment] = []
        token = ""
        while True:
            reply = await stub.ListSegments(segment_service_pb2.ListSegmentsRequest(page_size=1000, page_token=token),
                                            metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.segments
            token = reply.next_page_token
            if not token:
                return found

    segments = _stub_call(target, data_dir, call)
    if output_format == "json":
        output.print_json([output.message_to_dict(s) for s in segments])
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("Segment", "Display name", "Mode", "Members", "Rule"):
        table.add_column(column, overflow="fold")
    for s in segments:
        mode = segment_pb2.SegmentEvaluationMode.Name(s.evaluation_mode).removeprefix("SEGMENT_EVALUATION_MODE_")
        table.add_row(s.segment_id, s.display_name, mode, f"{s.member_count:,}", s.rule)
    output.console().print(table)


@segments_group.command("create")
@click.argument("segment_id")
@click.argument("rule", required=False)
@click.option("--rule-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the CEL rule from this file instead of RULE.")
@click.option("--display-name", required=True, help="What people call the segment.")
@click.option("--description", default="", help="Why the segment exists.")
@click.option("--real-time", is_flag=True, help="Re-evaluate members on every change (else on materialise).")
@output_option("table", "json")
@service_options
def create(segment_id: str, rule: str | None, rule_file: Path | None, display_name: str, description: str,
           real_time: bool, output_format: str, target: str | None, data_dir: Path) -> None:
    """Define a segment from a CEL rule.

    \b
    Example:
      crm segments create wealthy-savers 'aum >= 500000 && "TERM_DEPOSIT" in product_categories' \\
          --display-name "Wealthy savers"
      crm segments create leavers --rule-file leavers.cel --display-name "At risk" --real-time

    Exit status: 0 created, 1 refused (the rule's line, column and reason are printed), 2 bad
    arguments.
    """
    mode = segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME if real_time else segment_pb2.SEGMENT_EVALUATION_MODE_BATCH
    segment = segment_pb2.Segment(segment_id=segment_id, display_name=display_name, description=description,
                                  rule=_rule(rule, rule_file), evaluation_mode=mode)
    request = segment_service_pb2.CreateSegmentRequest(segment=segment, request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.CreateSegment(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show(reply.segment, output_format, title=reply.segment.name)


@segments_group.command("validate")
@click.argument("rule", required=False)
@click.option("--rule-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the CEL rule from this file instead of RULE.")
@output_option("table", "json")
@service_options
def validate(rule: str | None, rule_file: Path | None, output_format: str, target: str | None,
             data_dir: Path) -> None:
    """Check a rule against the feature catalogue without saving anything.

    \b
    Example:
      crm segments validate 'aum > 100000 && days_since_last_activity > 60'

    Exit status: 0 valid, 1 invalid (each issue with line, column and reason), 2 bad arguments.
    """
    request = segment_service_pb2.ValidateSegmentRuleRequest(rule=_rule(rule, rule_file))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.ValidateSegmentRule(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    if output_format == "json":
        output.print_json(output.message_to_dict(reply) | {"valid": reply.valid})
    else:
        verdict = "[green]valid[/]" if reply.valid else "[red]invalid[/]"
        output.console().print(f"{verdict}; features: {', '.join(reply.referenced_features) or '-'}; "
                               f"real-time capable: {'yes' if reply.real_time_capable else 'no'}")
        for line in _issues(reply.issues):
            output.console().print(f"  {line}", markup=False)
    if not reply.valid:
        raise SystemExit(1)


@segments_group.command("preview")
@click.argument("rule", required=False)
@click.option("--rule-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the CEL rule from this file instead of RULE.")
@click.option("--segment", "segment_id", help="Preview a saved segment's rule instead.")
@click.option("--sample", "sample_size", type=click.IntRange(min=0, max=100), default=10, show_default=True,
              help="How many matching customers to show.")
@output_option("table", "json")
@service_options
def preview(rule: str | None, rule_file: Path | None, segment_id: str | None, sample_size: int, output_format: str,
            target: str | None, data_dir: Path) -> None:
    """Count the customers a rule selects now, with a sample; nothing is saved.

    \b
    Example:
      crm segments preview 'aum >= 1000000'
      crm segments preview --segment wealthy-savers --sample 5
    """
    request = segment_service_pb2.PreviewSegmentRequest(sample_size=sample_size)
    if segment_id is not None:
        if rule is not None or rule_file is not None:
            output.fail("give a RULE, --rule-file or --segment, one of them", code=2)
        request.segment = _segment_name(segment_id)
    else:
        request.rule = _rule(rule, rule_file)
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.PreviewSegment(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    if output_format == "json":
        output.print_json(output.message_to_dict(reply) | {"count": reply.count,
                                                          "total_customers": reply.total_customers})
        return
    share = reply.count / reply.total_customers if reply.total_customers else 0.0
    as_of = reply.features_as_of.ToJsonString() if reply.HasField("features_as_of") else "never"
    output.console().print(f"{reply.count:,} of {reply.total_customers:,} customers ({share:.1%}); "
                           f"features as of {as_of}")
    for sample in reply.samples:
        output.console().print(f"  {sample.customer}", markup=False)
    for line in _issues(reply.warnings):
        output.console().print(f"  {line}", markup=False)


@segments_group.command("materialise")
@click.argument("segment_id")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the operation to its end.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds to follow it; it goes on in the service after that.")
@output_option("table", "json")
@service_options
def materialise(segment_id: str, wait: bool, timeout: float, output_format: str, target: str | None,
                data_dir: Path) -> None:
    """Evaluate a segment's rule over every customer and store its members (an operation).

    \b
    Example:
      crm segments materialise wealthy-savers

    Exit status: 0 when it succeeded (or started, with --no-wait), 1 when it failed.
    """
    api = SERVICES["segment"]
    request = segment_service_pb2.MaterialiseSegmentRequest(name=_segment_name(segment_id),
                                                            request_id=str(uuid.uuid4()))
    console = output.console(stderr=True)

    async def call(stub: Any, metadata: calls.Metadata) -> operation_pb2.Operation:
        started = (await stub.MaterialiseSegment(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).operation
        if not wait:
            return started

        def update(operation: operation_pb2.Operation) -> None:
            if output_format == "table":
                console.print(f"{state_name(operation.state).lower()} {operation.progress.stage}", markup=False)

        return await watch(api, stub, metadata=metadata, name=started.name, seconds=timeout, on_update=update)

    try:
        operation = _stub_call(target, data_dir, call)
    except TimeoutError:
        output.fail(f"still running after {timeout:.0f} s; follow it with `crm operations watch --service segment`")
    if output_format == "json":
        output.print_json(summary(operation))
    else:
        output.console().print(f"{operation.name}: {state_name(operation.state)}", markup=False)
    if operation.state == operation_pb2.OPERATION_STATE_FAILED:
        output.fail(output.describe_status(operation.error))


@segments_group.command("members")
@click.argument("segment_id")
@click.option("--limit", type=click.IntRange(min=1, max=100_000), default=50, show_default=True)
@output_option("table", "json")
@service_options
def members(segment_id: str, limit: int, output_format: str, target: str | None, data_dir: Path) -> None:
    """The customers in a materialised segment, newest entries first.

    \b
    Example:
      crm segments members wealthy-savers --limit 20
    """
    async def call(stub: Any, metadata: calls.Metadata) -> tuple[list[segment_pb2.SegmentMember], int]:
        found: list[segment_pb2.SegmentMember] = []
        token, total = "", 0
        while len(found) < limit:
            reply = await stub.ListSegmentMembers(segment_service_pb2.ListSegmentMembersRequest(
                parent=_segment_name(segment_id), page_size=min(1000, limit - len(found)), page_token=token),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.members
            token, total = reply.next_page_token, reply.total_size
            if not token:
                break
        return found[:limit], total

    found, total = _stub_call(target, data_dir, call)
    if output_format == "json":
        output.print_json({"total_size": total, "members": [output.message_to_dict(m) for m in found]})
        return
    table = Table(title=f"{len(found)} of {total:,} members", show_header=True, header_style="bold")
    for column in ("Customer", "Entered", "Rule version"):
        table.add_column(column)
    for member in found:
        table.add_row(member.customer, member.enter_time.ToJsonString(), str(member.rule_version))
    output.console().print(table)


@segments_group.command("explain")
@click.argument("segment_id")
@click.argument("customer_id")
@output_option("table", "json")
@service_options
def explain(segment_id: str, customer_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """Why a customer is in a segment or not: each clause of its rule, the values read, held or not.

    \b
    Example:
      crm segments explain wealthy-savers DEMO0001
    """
    request = segment_service_pb2.ExplainSegmentMembershipRequest(segment=_segment_name(segment_id),
                                                                   customer=_customer_name(customer_id))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.ExplainSegmentMembership(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    if output_format == "json":
        output.print_json(output.message_to_dict(reply) | {"member": reply.member})
        return
    verdict = "[green]in[/]" if reply.member else "[yellow]not in[/]"
    output.console().print(f"{customer_id} is {verdict} {segment_id}")
    table = Table(show_header=True, header_style="bold")
    for column in ("Clause", "Held", "Values"):
        table.add_column(column, overflow="fold")
    for clause in reply.clauses:
        held = segment_service_pb2.ClauseOutcome.Name(clause.held).removeprefix("CLAUSE_OUTCOME_")
        table.add_row(clause.text, held, ", ".join(f"{k}={v}" for k, v in sorted(clause.values.items())))
    output.console().print(table)
