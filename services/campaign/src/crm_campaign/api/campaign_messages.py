"""Campaign protos <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from google.type import timeofday_pb2

from crm.campaign.v1 import campaign_pb2
from crm_campaign.api import value_messages as values
from crm_campaign.campaigns.model import (
    ApprovalDecision,
    Campaign,
    ChannelCost,
    ContactPolicy,
    ControlGroup,
    FrequencyCap,
    QuietHours,
    TimeOfDay,
)
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import duration, set_timestamps, timestamp


def to_domain(message: campaign_pb2.Campaign, *, campaign_id: str | None = None) -> Campaign:
    """Domain campaign from a request; INVALID_ARGUMENT for values that cannot even be read."""
    bad: list[FieldViolation] = []
    campaign = Campaign(
        campaign_id=campaign_id if campaign_id is not None else message.campaign_id,
        display_name=message.display_name,
        description=message.description,
        type=message.type,
        segment=message.segment,
        active_period=values.read_interval(message.active_period),
        contact_policy=_policy(message.contact_policy),
        control_group=ControlGroup(values.read_decimal(
            message.control_group.holdout_percentage, "campaign.control_group.holdout_percentage", bad)),
        max_contacts=message.max_contacts,
        attribution_window=(values.read_duration(message.attribution_window)
                            if message.HasField("attribution_window") else None),
        fixed_cost=(values.read_money(message.fixed_cost, "campaign.fixed_cost", bad)
                    if message.HasField("fixed_cost") else None),
        channel_costs=tuple(
            ChannelCost(channel=cost.channel,
                        cost_per_contact=(values.read_money(cost.cost_per_contact,
                                                            f"campaign.channel_costs[{i}].cost_per_contact", bad)
                                          if cost.HasField("cost_per_contact") else None))
            for i, cost in enumerate(message.channel_costs)),
    )
    if bad:
        raise InvalidArgument(bad)
    return campaign


def _policy(message: campaign_pb2.ContactPolicy) -> ContactPolicy:
    quiet = message.quiet_hours
    return ContactPolicy(
        channels=tuple(message.channels),
        channel_strategy=message.channel_strategy,
        frequency_caps=tuple(
            FrequencyCap(max_contacts=cap.max_contacts,
                         period=values.read_duration(cap.period) if cap.HasField("period") else None,
                         channel=cap.channel, scope=cap.scope)
            for cap in message.frequency_caps),
        quiet_hours=QuietHours(
            start=_time_of_day(quiet.start) if quiet.HasField("start") else None,
            end=_time_of_day(quiet.end) if quiet.HasField("end") else None,
            quiet_days=tuple(quiet.quiet_days), time_zone=quiet.time_zone,
        ) if message.HasField("quiet_hours") else None,
    )


def _time_of_day(message: timeofday_pb2.TimeOfDay) -> TimeOfDay:
    return TimeOfDay(message.hours, message.minutes, message.seconds, message.nanos)


def to_proto(campaign: Campaign) -> campaign_pb2.Campaign:
    c = campaign
    message = campaign_pb2.Campaign(
        name=c.name, campaign_id=c.campaign_id, etag=c.etag, display_name=c.display_name,
        description=c.description, type=campaign_pb2.CampaignType.ValueType(c.type),
        state=campaign_pb2.CampaignState.ValueType(c.state),
        segment=c.segment, max_contacts=c.max_contacts, creator=c.creator, submitter=c.submitter,
        approval_history=[_decision(d) for d in c.approval_history], state_reason=c.state_reason,
        audience_operation=c.audience_operation, target_count=c.target_count, control_count=c.control_count,
        channel_costs=[campaign_pb2.ChannelCost(
            channel=campaign_pb2.Channel.ValueType(cost.channel),
            cost_per_contact=values.money_to_proto(cost.cost_per_contact) if cost.cost_per_contact else None)
            for cost in c.channel_costs],
    )
    if c.active_period.start_time is not None or c.active_period.end_time is not None:
        message.active_period.CopyFrom(values.interval_to_proto(c.active_period))
    _policy_to_proto(c.contact_policy, message.contact_policy)
    if c.control_group.holdout_percentage:
        message.control_group.holdout_percentage.CopyFrom(values.decimal_to_proto(c.control_group.holdout_percentage))
    message.control_group.seed = c.control_seed
    if c.attribution_window is not None:
        message.attribution_window.CopyFrom(duration(c.attribution_window))
    if c.fixed_cost is not None:
        message.fixed_cost.CopyFrom(values.money_to_proto(c.fixed_cost))
    set_timestamps(message, scheduled_launch_time=c.scheduled_launch_at, launch_time=c.launched_at,
                   close_time=c.closed_at, create_time=c.created_at, update_time=c.updated_at)
    return message


def _policy_to_proto(policy: ContactPolicy, message: campaign_pb2.ContactPolicy) -> None:
    message.channels.extend(campaign_pb2.Channel.ValueType(c) for c in policy.channels)
    message.channel_strategy = campaign_pb2.ChannelStrategy.ValueType(policy.channel_strategy)
    for cap in policy.frequency_caps:
        cap_message = message.frequency_caps.add(max_contacts=cap.max_contacts, channel=cap.channel,
                                                 scope=cap.scope)
        if cap.period is not None:
            cap_message.period.CopyFrom(duration(cap.period))
    quiet = policy.quiet_hours
    if quiet is not None:
        message.quiet_hours.quiet_days.extend(quiet.quiet_days)
        message.quiet_hours.time_zone = quiet.time_zone
        for field, value in (("start", quiet.start), ("end", quiet.end)):
            if value is not None:
                getattr(message.quiet_hours, field).CopyFrom(timeofday_pb2.TimeOfDay(
                    hours=value.hours, minutes=value.minutes, seconds=value.seconds, nanos=value.nanos))


def _decision(decision: ApprovalDecision) -> campaign_pb2.ApprovalDecision:
    message = campaign_pb2.ApprovalDecision(
        reviewer=decision.reviewer, outcome=campaign_pb2.ApprovalOutcome.ValueType(decision.outcome),
        comment=decision.comment)
    if decision.decided_at is not None:
        message.decide_time.CopyFrom(timestamp(decision.decided_at))
    return message
