"""`crm campaigns ...` and `crm offers ...`: a marketer's campaigns over campaign's gRPC contract."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format
from google.type import decimal_pb2, interval_pb2
from rich.table import Table

from crm.campaign.v1 import audience_pb2, campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from crm.common.v1 import operation_pb2
from crm_cli import calls, output
from crm_cli.operations import SERVICES, watch
from crm_cli.options import output_option, service_options
from crmkit.auth import Role

CALL_TIMEOUT_SECONDS = 30.0
CHANNELS = [n.removeprefix("CHANNEL_").lower() for n in campaign_pb2.Channel.DESCRIPTOR.values_by_name
            if not n.endswith("UNSPECIFIED")]


def campaign_name(value: str) -> str:
    return value if value.startswith("campaigns/") else f"campaigns/{value}"


def _stub_call(target: str | None, data_dir: Path,
               call: Callable[[campaign_service_pb2_grpc.CampaignServiceStub, calls.Metadata], Any],
               *, as_subject: str | None = None) -> Any:
    return calls.call_service("campaign", campaign_service_pb2_grpc.CampaignServiceStub, target, data_dir, call,
                              as_subject=as_subject, role=Role.MARKETER)



def _as_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--as", "as_subject", metavar="SUBJECT",
                        help="Act as this person (a one-hour marketer token for SUBJECT) instead of CRM_TOKEN "
                             "or the local admin token.")(function)


def _state(campaign: campaign_pb2.Campaign) -> str:
    return campaign_pb2.CampaignState.Name(campaign.state).removeprefix("CAMPAIGN_STATE_").lower()


def _show(campaign: campaign_pb2.Campaign, output_format: str) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(campaign))
    else:
        output.console().print(f"{campaign.name}: {_state(campaign)}", markup=False)


@click.group("campaigns")
def campaigns_group() -> None:
    """Campaigns: create, submit, approve as a second person, dry-run the audience funnel, launch,
    pause, read results with uplift.

    Calls carry CRM_TOKEN, else a one-hour admin token minted with the local secret; `--as SUBJECT`
    acts as another marketer (the approver must be neither creator nor submitter).
    """


@campaigns_group.command("create")
@click.argument("campaign_id", required=False)
@click.option("--file", "campaign_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Campaign as JSON (proto field names); flags given as well override it.")
@click.option("--display-name", help="What people call the campaign.")
@click.option("--description", help="What it offers and why.")
@click.option("--segment", help="The audience: a segment id.")
@click.option("--channel", "channels", multiple=True, type=click.Choice(CHANNELS),
              help="Channels in order of preference; repeat the option.")
@click.option("--holdout", type=click.FloatRange(min=0, max=50), help="Control group, percent of the audience.")
@click.option("--days", type=click.IntRange(min=1, max=366), help="Active from now for DAYS days.")
@click.option("--max-contacts", type=click.IntRange(min=1), help="At most this many customers contacted.")
@output_option("table", "json")
@_as_option
@service_options
def create(campaign_id: str | None, campaign_file: Path | None, display_name: str | None, description: str | None,
           segment: str | None, channels: tuple[str, ...], holdout: float | None, days: int | None,
           max_contacts: int | None, output_format: str, as_subject: str | None, target: str | None,
           data_dir: Path) -> None:
    """Create a draft batch campaign from flags or a JSON file.

    \b
    Example:
      crm campaigns create td-renewal --display-name "Deposit renewal" --segment wealthy-savers \\
          --channel sms --channel mobile_app --holdout 10 --days 30
      crm campaigns create --file campaign.json

    Exit status: 0 created, 1 refused (each field and rule printed), 2 bad arguments.
    """
    campaign = campaign_pb2.Campaign(type=campaign_pb2.CAMPAIGN_TYPE_BATCH)
    if campaign_file is not None:
        try:
            json_format.Parse(campaign_file.read_text(encoding="utf-8"), campaign)
        except json_format.ParseError as exc:
            output.fail(f"{campaign_file}: {exc}", code=2)
    elif campaign_id is None:
        output.fail("give a CAMPAIGN_ID or --file", code=2)
    if campaign_id:
        campaign.campaign_id = campaign_id
    if display_name is not None:
        campaign.display_name = display_name
    if description is not None:
        campaign.description = description
    if segment is not None:
        campaign.segment = segment if segment.startswith("segments/") else f"segments/{segment}"
    if channels:
        del campaign.contact_policy.channels[:]
        campaign.contact_policy.channels.extend(campaign_pb2.Channel.Value(f"CHANNEL_{c.upper()}") for c in channels)
        campaign.contact_policy.channel_strategy = campaign_pb2.CHANNEL_STRATEGY_FIXED_ORDER
    if holdout is not None:
        campaign.control_group.holdout_percentage.CopyFrom(decimal_pb2.Decimal(value=f"{holdout:g}"))
    if days is not None or not campaign.HasField("active_period"):
        now = datetime.now(UTC)
        period = interval_pb2.Interval()
        period.start_time.FromDatetime(now)
        period.end_time.FromDatetime(now + timedelta(days=days or 30))
        campaign.active_period.CopyFrom(period)
    if max_contacts is not None:
        campaign.max_contacts = max_contacts
    request = campaign_service_pb2.CreateCampaignRequest(campaign=campaign, request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.CreateCampaign(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS), as_subject=as_subject)
    _show(reply.campaign, output_format)


def _step(rpc: str, request_type: Any, **fields: Any) -> Callable[..., None]:
    def act(campaign_id: str, output_format: str, as_subject: str | None, target: str | None, data_dir: Path,
            **extra: Any) -> None:
        request = request_type(name=campaign_name(campaign_id), request_id=str(uuid.uuid4()), **fields,
                               **{k: v for k, v in extra.items() if v is not None})
        reply = _stub_call(target, data_dir, lambda stub, metadata: getattr(stub, rpc)(
            request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS), as_subject=as_subject)
        _show(reply.campaign, output_format)
    return act


@campaigns_group.command("submit")
@click.argument("campaign_id")
@output_option("table", "json")
@_as_option
@service_options
def submit(campaign_id: str, output_format: str, as_subject: str | None, target: str | None, data_dir: Path) -> None:
    """Send a draft for approval.

    \b
    Example:
      crm campaigns submit td-renewal
    """
    _step("SubmitCampaign", campaign_service_pb2.SubmitCampaignRequest)(
        campaign_id, output_format, as_subject, target, data_dir)


@campaigns_group.command("approve")
@click.argument("campaign_id")
@click.option("--comment", default="", help="The reviewer's note.")
@output_option("table", "json")
@_as_option
@service_options
def approve(campaign_id: str, comment: str, output_format: str, as_subject: str | None, target: str | None,
            data_dir: Path) -> None:
    """Approve a submitted campaign, as a second person (not its creator or submitter).

    \b
    Example:
      crm campaigns approve td-renewal --as mkt-2001 --comment "Checked the offer terms"
      CRM_TOKEN=$(crm token --role marketer --subject mkt-2002) crm campaigns approve td-renewal
    """
    _step("ApproveCampaign", campaign_service_pb2.ApproveCampaignRequest)(
        campaign_id, output_format, as_subject, target, data_dir, comment=comment)


@campaigns_group.command("launch")
@click.argument("campaign_id")
@output_option("table", "json")
@_as_option
@service_options
def launch(campaign_id: str, output_format: str, as_subject: str | None, target: str | None, data_dir: Path) -> None:
    """Launch an approved campaign: its audience is built and dispatches queued.

    \b
    Example:
      crm campaigns launch td-renewal
    """
    _step("LaunchCampaign", campaign_service_pb2.LaunchCampaignRequest)(
        campaign_id, output_format, as_subject, target, data_dir)


@campaigns_group.command("pause")
@click.argument("campaign_id")
@click.option("--reason", required=True, help="Why it is paused.")
@output_option("table", "json")
@_as_option
@service_options
def pause(campaign_id: str, reason: str, output_format: str, as_subject: str | None, target: str | None,
          data_dir: Path) -> None:
    """Pause a running campaign: nothing more is sent until it is resumed.

    \b
    Example:
      crm campaigns pause td-renewal --reason "rate under review"
    """
    _step("PauseCampaign", campaign_service_pb2.PauseCampaignRequest)(
        campaign_id, output_format, as_subject, target, data_dir, reason=reason)


@campaigns_group.command("list")
@output_option("table", "json")
@service_options
def list_campaigns(output_format: str, target: str | None, data_dir: Path) -> None:
    """Every campaign with its state and audience sizes.

    \b
    Example:
      crm campaigns list --output json
    """
    async def call(stub: Any, metadata: calls.Metadata) -> list[campaign_pb2.Campaign]:
        found: list[campaign_pb2.Campaign] = []
        token = ""
        while True:
            reply = await stub.ListCampaigns(campaign_service_pb2.ListCampaignsRequest(
                page_size=1000, page_token=token), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.campaigns
            token = reply.next_page_token
            if not token:
                return found

    found = _stub_call(target, data_dir, call)
    if output_format == "json":
        output.print_json([output.message_to_dict(c) for c in found])
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("Campaign", "Display name", "State", "Segment", "Target", "Control"):
        table.add_column(column, overflow="fold")
    for c in found:
        table.add_row(c.campaign_id, c.display_name, _state(c), c.segment, f"{c.target_count:,}",
                      f"{c.control_count:,}")
    output.console().print(table)


@campaigns_group.command("dry-run")
@click.argument("campaign_id")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True)
@output_option("table", "json")
@service_options
def dry_run(campaign_id: str, timeout: float, output_format: str, target: str | None, data_dir: Path) -> None:
    """Build the audience without sending anything: the funnel from candidates, through each
    suppression reason, to the control and target groups.

    \b
    Example:
      crm campaigns dry-run td-renewal
    """
    request = campaign_service_pb2.BuildAudienceRequest(name=campaign_name(campaign_id), dry_run=True,
                                                        request_id=str(uuid.uuid4()))

    async def call(stub: Any, metadata: calls.Metadata) -> operation_pb2.Operation:
        started = (await stub.BuildAudience(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).operation
        return await watch(SERVICES["campaign"], stub, metadata=metadata, name=started.name, seconds=timeout,
                           on_update=lambda _: None)

    try:
        operation = _stub_call(target, data_dir, call)
    except TimeoutError:
        output.fail(f"still building after {timeout:.0f} s; follow it with `crm operations watch --service campaign`")
    if operation.state == operation_pb2.OPERATION_STATE_FAILED:
        output.fail(output.describe_status(operation.error))
    build = audience_pb2.AudienceBuild()
    operation.response.Unpack(build)
    if output_format == "json":
        output.print_json(output.message_to_dict(build) | {"candidate_count": build.candidate_count,
                                                          "eligible_count": build.eligible_count,
                                                          "target_count": build.target_count,
                                                          "control_count": build.control_count})
        return
    table = Table(title=f"Audience funnel of {campaign_id} (dry run)", show_header=True, header_style="bold")
    table.add_column("Step")
    table.add_column("Customers", justify="right")
    table.add_row(f"candidates in {build.segment or 'the segment'}", f"{build.candidate_count:,}")
    for s in build.suppression_counts:
        reason = audience_pb2.SuppressionReason.Name(s.reason).removeprefix("SUPPRESSION_REASON_").lower()
        table.add_row(f"  - suppressed: {reason.replace('_', ' ')}", f"{s.count:,}")
    table.add_row("eligible", f"{build.eligible_count:,}")
    table.add_row("  - control group", f"{build.control_count:,}")
    table.add_row("target", f"{build.target_count:,}", style="bold")
    for c in build.channel_counts:
        table.add_row(f"  via {_channel_text(c.channel)}", f"{c.count:,}")
    for v in build.daily_volumes:
        table.add_row(f"  due {v.date.year:04d}-{v.date.month:02d}-{v.date.day:02d} via {_channel_text(v.channel)}",
                      f"{v.count:,}")
    output.console().print(table)


def _channel_text(channel: campaign_pb2.Channel.ValueType) -> str:
    return campaign_pb2.Channel.Name(channel).removeprefix("CHANNEL_").lower()


@campaigns_group.command("results")
@click.argument("campaign_id")
@click.option("--confidence", type=click.FloatRange(min=0.5, max=0.999), default=0.95, show_default=True)
@output_option("table", "json")
@service_options
def results(campaign_id: str, confidence: float, output_format: str, target: str | None, data_dir: Path) -> None:
    """Conversions of target against control, the uplift and its confidence interval, overall and by
    offer and channel.

    \b
    Example:
      crm campaigns results td-renewal --confidence 0.9
    """
    request = campaign_service_pb2.GetCampaignResultsRequest(campaign=campaign_name(campaign_id),
                                                             confidence_level=confidence)
    found = _stub_call(target, data_dir, lambda stub, metadata: stub.GetCampaignResults(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).results
    if output_format == "json":
        output.print_json(output.message_to_dict(found))
        return
    table = Table(title=f"Results of {campaign_id}{' (final)' if found.final else ''}", show_header=True,
                  header_style="bold")
    for column in ("Slice", "Target", "Control", "Target conv.", "Control conv.", "Uplift", "Interval"):
        table.add_column(column)
    slices = [("overall", found.overall)]
    slices += [(f"offer {s.offer}", s) for s in found.by_offer]
    slices += [(f"channel {campaign_pb2.Channel.Name(s.channel).removeprefix('CHANNEL_').lower()}", s)
               for s in found.by_channel]
    for label, s in slices:
        interval = s.uplift_interval
        table.add_row(label, f"{s.target_count:,}", f"{s.control_count:,}", f"{s.target_conversion_rate:.2%}",
                      f"{s.control_conversion_rate:.2%}", f"{s.uplift:+.2%}",
                      f"[{interval.low:+.2%}, {interval.high:+.2%}] at {interval.level:.0%}")
    output.console().print(table)


@click.group("offers")
def offers_group() -> None:
    """A campaign's offers: list and create (a campaign needs one before it is submitted)."""


@offers_group.command("list")
@click.argument("campaign_id")
@output_option("table", "json")
@service_options
def list_offers(campaign_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """A campaign's offers with their product and priority.

    \b
    Example:
      crm offers list td-renewal
    """
    async def call(stub: Any, metadata: calls.Metadata) -> list[campaign_pb2.Offer]:
        found: list[campaign_pb2.Offer] = []
        token = ""
        while True:
            reply = await stub.ListOffers(campaign_service_pb2.ListOffersRequest(
                parent=campaign_name(campaign_id), page_size=1000, page_token=token),
                                          metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.offers
            token = reply.next_page_token
            if not token:
                return found

    found = _stub_call(target, data_dir, call)
    if output_format == "json":
        output.print_json([output.message_to_dict(o) for o in found])
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("Offer", "Display name", "Product", "Priority"):
        table.add_column(column, overflow="fold")
    for o in found:
        table.add_row(o.offer_id, o.display_name, o.product_code, str(o.priority))
    output.console().print(table)


@offers_group.command("create")
@click.argument("campaign_id")
@click.argument("offer_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@output_option("table", "json")
@service_options
def create_offer(campaign_id: str, offer_file: Path, output_format: str, target: str | None, data_dir: Path) -> None:
    """Add an offer to a draft campaign from a JSON file (an Offer, proto field names).

    \b
    Example:
      crm offers create td-renewal td-3y.json

    Exit status: 0 created, 1 refused (each field and rule printed), 2 unreadable file.
    """
    offer = campaign_pb2.Offer()
    try:
        json_format.Parse(offer_file.read_text(encoding="utf-8"), offer)
    except json_format.ParseError as exc:
        output.fail(f"{offer_file}: {exc}", code=2)
    request = campaign_service_pb2.CreateOfferRequest(parent=campaign_name(campaign_id), offer=offer,
                                                      request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.CreateOffer(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    if output_format == "json":
        output.print_json(output.message_to_dict(reply.offer))
    else:
        output.console().print(output.message_table(reply.offer, title=reply.offer.name))
