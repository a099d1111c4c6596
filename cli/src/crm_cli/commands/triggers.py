"""`crm triggers ...`: a marketer's event triggers (a deposit nears maturity: offer a renewal; a
birthday nears: a greeting task for the relationship manager) over campaign's TriggerRule RPCs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from google.protobuf import duration_pb2, field_mask_pb2, json_format
from rich.table import Table

from crm.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc, care_pb2, trigger_pb2
from crm_cli import calls, output
from crm_cli.options import output_option, service_options
from crm_cli.proto_values import choices, label, time_of, value_of
from crmkit.auth import Role

CALL_TIMEOUT_SECONDS = 30.0
EVENTS = choices(trigger_pb2.TriggerEventType, "TRIGGER_EVENT_TYPE_")
STATES = choices(trigger_pb2.TriggerRuleState, "TRIGGER_RULE_STATE_")
TASK_KINDS = choices(care_pb2.CareTaskKind, "CARE_TASK_KIND_")
TASK_PRIORITIES = choices(care_pb2.CareTaskPriority, "CARE_TASK_PRIORITY_")
# Which condition flags each kind of event takes; a flag given for another event is a bad argument.
CONDITION_FLAGS = {
    "product_maturity": {"lead_days", "product_codes"},
    "birthday": {"lead_days"},
    "anniversary": {"lead_days", "years"},
    "dormancy": {"inactive_days"},
    "card_application": {"product_codes", "approved_only"},
    "payroll": {"consecutive_months"},
    "segment_entry": {"entry_segment"},
}
FLAG_NAMES = {"lead_days": "--lead-days", "product_codes": "--product-code", "years": "--years",
              "inactive_days": "--inactive-days", "approved_only": "--approved-only",
              "consecutive_months": "--consecutive-months", "entry_segment": "--entry-segment"}


def rule_name(value: str) -> str:
    return value if value.startswith("triggerRules/") else f"triggerRules/{value}"


def _days(days: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(days=days))
    return duration


def _stub_call(target: str | None, data_dir: Path,
               call: Callable[[campaign_service_pb2_grpc.CampaignServiceStub, calls.Metadata], Any]) -> Any:
    return calls.call_service("campaign", campaign_service_pb2_grpc.CampaignServiceStub, target, data_dir, call,
                              role=Role.MARKETER)


def _event(rule: trigger_pb2.TriggerRule) -> str:
    return label(trigger_pb2.TriggerEventType, "TRIGGER_EVENT_TYPE_", rule.event_type)


def _state(rule: trigger_pb2.TriggerRule) -> str:
    return label(trigger_pb2.TriggerRuleState, "TRIGGER_RULE_STATE_", rule.state)


def _action(rule: trigger_pb2.TriggerRule) -> str:
    case = rule.WhichOneof("action")
    if case == "offer_action":
        return f"offer {rule.offer_action.offer or rule.offer_action.campaign}"
    if case == "care_task_action":
        return f"task {label(care_pb2.CareTaskKind, 'CARE_TASK_KIND_', rule.care_task_action.kind)}"
    return "-"


def _show(rule: trigger_pb2.TriggerRule, output_format: str) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(rule))
    else:
        output.console().print(output.message_table(rule, title=f"{rule.name}: {_state(rule)}"))


@click.group("triggers")
def triggers_group() -> None:
    """Event triggers: when a customer event happens (a product nears maturity, a birthday, a card
    application, dormancy, ...) make an offer of a triggered campaign or give the customer's
    relationship manager a care task.

    \b
    Example:
      crm triggers create td-maturity --display-name "Deposit maturity 14 days ahead" \\
          --event product_maturity --lead-days 14 --task maturity_follow_up --task-title "Call about renewal"
      crm triggers list --state enabled
      crm triggers disable td-maturity
    """


def _condition(rule: trigger_pb2.TriggerRule, event: str, flags: dict[str, Any]) -> None:
    given = {k for k, v in flags.items() if v not in (None, (), False)}
    stray = given - CONDITION_FLAGS[event]
    if stray:
        output.fail(f"{', '.join(sorted(FLAG_NAMES[f] for f in stray))} do(es) not apply to --event {event}", code=2)
    condition = getattr(rule, event)
    condition.SetInParent()  # selects the oneof case even when every field keeps its default
    if flags["lead_days"] is not None:
        condition.lead_time.CopyFrom(_days(flags["lead_days"]))
    if flags["inactive_days"] is not None:
        condition.inactive_for.CopyFrom(_days(flags["inactive_days"]))
    if flags["product_codes"]:
        codes = condition.card_product_codes if event == "card_application" else condition.product_codes
        codes.extend(flags["product_codes"])
    if flags["years"]:
        condition.years.extend(flags["years"])
    if flags["approved_only"]:
        condition.approved_only = True
    if flags["consecutive_months"] is not None:
        condition.consecutive_months = flags["consecutive_months"]
    if flags["entry_segment"] is not None:
        condition.segment = _segment_name(flags["entry_segment"])


def _segment_name(value: str) -> str:
    return value if value.startswith("segments/") else f"segments/{value}"


def _campaign_name(value: str) -> str:
    return value if value.startswith("campaigns/") else f"campaigns/{value}"


@triggers_group.command("create")
@click.argument("trigger_rule_id", required=False)
@click.option("--file", "rule_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A TriggerRule as JSON (proto field names); flags given as well override it.")
@click.option("--display-name", help="What people call the rule.")
@click.option("--description", help="What it is for.")
@click.option("--event", type=click.Choice(EVENTS), help="The event that fires the rule.")
@click.option("--lead-days", type=click.IntRange(min=0), help="product_maturity, birthday, anniversary: "
              "days ahead of the date to fire.")
@click.option("--inactive-days", type=click.IntRange(min=0), help="dormancy: days without activity.")
@click.option("--product-code", "product_codes", multiple=True,
              help="product_maturity, card_application: only these products; repeat the option.")
@click.option("--years", type=int, multiple=True, help="anniversary: only these anniversaries; repeat.")
@click.option("--approved-only", is_flag=True, help="card_application: fire once the application is approved.")
@click.option("--consecutive-months", type=int, help="payroll: months of salary credits needed.")
@click.option("--entry-segment", help="segment_entry: the segment whose entrants fire the rule.")
@click.option("--population-segment", help="Only customers in this segment (default everyone).")
@click.option("--offer-campaign", help="Action: an offer of this triggered campaign.")
@click.option("--offer", help="With --offer-campaign: this offer id (default arbitration chooses).")
@click.option("--task", "task_kind", type=click.Choice(TASK_KINDS),
              help="Action: a care task of this kind for the relationship manager.")
@click.option("--task-title", help="With --task: its title (no personal data).")
@click.option("--task-due-days", type=click.IntRange(min=0), help="With --task: due this many days after firing.")
@click.option("--task-priority", type=click.Choice(TASK_PRIORITIES), help="With --task: its priority.")
@click.option("--cooldown-days", type=click.IntRange(min=0), help="Least days between two firings per customer.")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@output_option("table", "json")
@service_options
def create(trigger_rule_id: str | None, rule_file: Path | None, display_name: str | None, description: str | None,
           event: str | None, lead_days: int | None, inactive_days: int | None, product_codes: tuple[str, ...],
           years: tuple[int, ...], approved_only: bool, consecutive_months: int | None, entry_segment: str | None,
           population_segment: str | None, offer_campaign: str | None, offer: str | None, task_kind: str | None,
           task_title: str | None, task_due_days: int | None, task_priority: str | None, cooldown_days: int | None,
           disabled: bool, output_format: str, target: str | None, data_dir: Path) -> None:
    """Create a trigger rule from flags or a JSON file.

    \b
    Example:
      crm triggers create td-maturity --display-name "Deposit maturity 14 days ahead" \\
          --event product_maturity --lead-days 14 --product-code TD-1Y-CNY \\
          --offer-campaign td-renewal --offer td-3y
      crm triggers create birthday-call --display-name "Birthday greeting" --event birthday \\
          --lead-days 2 --task birthday_greeting --task-title "Birthday greeting call"
      crm triggers create --file rule.json

    Exit status: 0 created, 1 refused (each field and rule printed), 2 bad arguments.
    """
    rule = trigger_pb2.TriggerRule()
    if rule_file is not None:
        try:
            json_format.Parse(rule_file.read_text(encoding="utf-8"), rule)
        except json_format.ParseError as exc:
            output.fail(f"{rule_file}: {exc}", code=2)
    elif trigger_rule_id is None:
        output.fail("give a TRIGGER_RULE_ID or --file", code=2)
    if trigger_rule_id:
        rule.trigger_rule_id = trigger_rule_id
    if display_name is not None:
        rule.display_name = display_name
    if description is not None:
        rule.description = description
    condition_flags = {"lead_days": lead_days, "inactive_days": inactive_days, "product_codes": product_codes,
                       "years": years, "approved_only": approved_only, "consecutive_months": consecutive_months,
                       "entry_segment": entry_segment}
    if event is not None:
        _condition(rule, event, condition_flags)
    elif any(v not in (None, (), False) for v in condition_flags.values()):
        output.fail("condition flags need --event", code=2)
    if population_segment is not None:
        rule.population_segment = _segment_name(population_segment)
    if offer_campaign is not None and task_kind is not None:
        output.fail("give one action: --offer-campaign or --task", code=2)
    if offer is not None and offer_campaign is None:
        output.fail("--offer needs --offer-campaign", code=2)
    if (task_title or task_due_days is not None or task_priority) and task_kind is None:
        output.fail("--task-title, --task-due-days and --task-priority need --task", code=2)
    if offer_campaign is not None:
        campaign = _campaign_name(offer_campaign)
        rule.offer_action.campaign = campaign
        if offer:
            rule.offer_action.offer = offer if "/" in offer else f"{campaign}/offers/{offer}"
    if task_kind is not None:
        rule.care_task_action.kind = value_of(care_pb2.CareTaskKind, "CARE_TASK_KIND_", task_kind)
        rule.care_task_action.title = task_title or ""
        if task_due_days is not None:
            rule.care_task_action.due_after.CopyFrom(_days(task_due_days))
        rule.care_task_action.priority = value_of(care_pb2.CareTaskPriority, "CARE_TASK_PRIORITY_", task_priority)
    if cooldown_days is not None:
        rule.cooldown.CopyFrom(_days(cooldown_days))
    if disabled:
        rule.state = trigger_pb2.TRIGGER_RULE_STATE_DISABLED
    request = campaign_service_pb2.CreateTriggerRuleRequest(trigger_rule=rule, request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.CreateTriggerRule(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show(reply.trigger_rule, output_format)


@triggers_group.command("list")
@click.option("--event", type=click.Choice(EVENTS), help="Only rules for this kind of event.")
@click.option("--state", type=click.Choice(STATES), help="Only enabled or only disabled rules.")
@click.option("--campaign", help="Only rules whose offer action uses this campaign.")
@output_option("table", "json")
@service_options
def list_rules(event: str | None, state: str | None, campaign: str | None, output_format: str,
               target: str | None, data_dir: Path) -> None:
    """Trigger rules by display name, with their event, action, state and firings.

    \b
    Example:
      crm triggers list --event product_maturity --state enabled
      crm triggers list --campaign td-renewal --output json
    """
    async def call(stub: Any, metadata: calls.Metadata) -> list[trigger_pb2.TriggerRule]:
        found: list[trigger_pb2.TriggerRule] = []
        token = ""
        while True:
            reply = await stub.ListTriggerRules(campaign_service_pb2.ListTriggerRulesRequest(
                page_size=1000, page_token=token,
                event_type=value_of(trigger_pb2.TriggerEventType, "TRIGGER_EVENT_TYPE_", event),
                state=value_of(trigger_pb2.TriggerRuleState, "TRIGGER_RULE_STATE_", state),
                campaign=_campaign_name(campaign) if campaign else ""),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.trigger_rules
            token = reply.next_page_token
            if not token:
                return found

    found = _stub_call(target, data_dir, call)
    if output_format == "json":
        output.print_json([output.message_to_dict(r) for r in found])
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("Rule", "Display name", "Event", "Action", "State", "Fired", "Last fired"):
        table.add_column(column, overflow="fold")
    for r in found:
        last = time_of(r.last_fire_time)
        table.add_row(r.trigger_rule_id, r.display_name, _event(r), _action(r), _state(r), f"{r.fire_count:,}",
                      last.strftime("%Y-%m-%d %H:%M") if last else "-")
    output.console().print(table)


@triggers_group.command("get")
@click.argument("trigger_rule_id")
@output_option("table", "json")
@service_options
def get(trigger_rule_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """One trigger rule, every field.

    \b
    Example:
      crm triggers get td-maturity
    """
    request = campaign_service_pb2.GetTriggerRuleRequest(name=rule_name(trigger_rule_id))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.GetTriggerRule(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show(reply.trigger_rule, output_format)


def _update(trigger_rule_id: str, fields: dict[str, Any], etag: str | None, output_format: str,
            target: str | None, data_dir: Path) -> None:
    rule = trigger_pb2.TriggerRule(name=rule_name(trigger_rule_id), etag=etag or "")
    paths = []
    for path, value in fields.items():
        if value is None:
            continue
        if path == "cooldown":
            rule.cooldown.CopyFrom(_days(value))
        else:
            setattr(rule, path, value)
        paths.append(path)
    if not paths:
        output.fail("nothing to change: give --enable/--disable, --display-name, --description or "
                    "--cooldown-days", code=2)
    request = campaign_service_pb2.UpdateTriggerRuleRequest(trigger_rule=rule,
                                                           update_mask=field_mask_pb2.FieldMask(paths=paths))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.UpdateTriggerRule(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show(reply.trigger_rule, output_format)


_etag_option = click.option("--etag", help="Only if the rule is still at this etag (from `crm triggers get`).")


@triggers_group.command("update")
@click.argument("trigger_rule_id")
@click.option("--enable/--disable", "enabled", default=None, help="Whether the rule fires.")
@click.option("--display-name", help="A new display name.")
@click.option("--description", help="A new description.")
@click.option("--cooldown-days", type=click.IntRange(min=0), help="Least days between two firings per customer.")
@_etag_option
@output_option("table", "json")
@service_options
def update(trigger_rule_id: str, enabled: bool | None, display_name: str | None, description: str | None,
           cooldown_days: int | None, etag: str | None, output_format: str, target: str | None,
           data_dir: Path) -> None:
    """Change a trigger rule: enable or disable it, rename it, change its cooldown.

    \b
    Example:
      crm triggers update td-maturity --disable
      crm triggers update td-maturity --cooldown-days 60 --display-name "Deposit maturity, 60-day cooldown"

    Exit status: 0 changed, 1 refused (each field and rule printed), 2 bad arguments.
    """
    state = None if enabled is None else (
        trigger_pb2.TRIGGER_RULE_STATE_ENABLED if enabled else trigger_pb2.TRIGGER_RULE_STATE_DISABLED)
    _update(trigger_rule_id, {"state": state, "display_name": display_name, "description": description,
                              "cooldown": cooldown_days}, etag, output_format, target, data_dir)


@triggers_group.command("enable")
@click.argument("trigger_rule_id")
@_etag_option
@output_option("table", "json")
@service_options
def enable(trigger_rule_id: str, etag: str | None, output_format: str, target: str | None, data_dir: Path) -> None:
    """Let a trigger rule fire again (events missed while disabled are not replayed).

    \b
    Example:
      crm triggers enable td-maturity
    """
    _update(trigger_rule_id, {"state": trigger_pb2.TRIGGER_RULE_STATE_ENABLED}, etag, output_format, target,
            data_dir)


@triggers_group.command("disable")
@click.argument("trigger_rule_id")
@_etag_option
@output_option("table", "json")
@service_options
def disable(trigger_rule_id: str, etag: str | None, output_format: str, target: str | None, data_dir: Path) -> None:
    """Stop a trigger rule firing; it is kept with its history.

    \b
    Example:
      crm triggers disable td-maturity
    """
    _update(trigger_rule_id, {"state": trigger_pb2.TRIGGER_RULE_STATE_DISABLED}, etag, output_format, target,
            data_dir)


@triggers_group.command("delete")
@click.argument("trigger_rule_id")
@_etag_option
@service_options
def delete(trigger_rule_id: str, etag: str | None, target: str | None, data_dir: Path) -> None:
    """Delete a trigger rule; the contacts and tasks it made are kept.

    \b
    Example:
      crm triggers delete td-maturity

    Exit status: 0 deleted, 1 refused (NOT_FOUND, or ABORTED for a stale --etag).
    """
    request = campaign_service_pb2.DeleteTriggerRuleRequest(name=rule_name(trigger_rule_id), etag=etag or "")
    _stub_call(target, data_dir, lambda stub, metadata: stub.DeleteTriggerRule(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    output.console().print(f"deleted {rule_name(trigger_rule_id)}", markup=False)
