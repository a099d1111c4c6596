"""SlaPolicy proto <-> the domain's SlaPolicy."""

from __future__ import annotations

from crm.feedback.v1 import sla_pb2
from crm_feedback.sla.rules import SlaPolicy
from crmkit.values import set_timestamps


def to_domain(message: sla_pb2.SlaPolicy, *, sla_policy_id: str | None = None) -> SlaPolicy:
    """Output-only fields are ignored; an unset target is None (the rules say it is required)."""
    return SlaPolicy(
        sla_policy_id=message.sla_policy_id if sla_policy_id is None else sla_policy_id,
        display_name=message.display_name, category=message.category, priority=message.priority,
        respond_within=message.respond_within.ToTimedelta() if message.HasField("respond_within") else None,
        resolve_within=message.resolve_within.ToTimedelta() if message.HasField("resolve_within") else None,
        escalate_on_breach=message.escalate_on_breach, clock_mode=message.clock_mode,
    )


def to_proto(policy: SlaPolicy) -> sla_pb2.SlaPolicy:
    message = sla_pb2.SlaPolicy(
        name=policy.name, sla_policy_id=policy.sla_policy_id, etag=policy.etag, display_name=policy.display_name,
        category=policy.category,  # type: ignore[arg-type]  # stored enum number
        priority=policy.priority,  # type: ignore[arg-type]
        escalate_on_breach=policy.escalate_on_breach,
        clock_mode=policy.clock_mode,  # type: ignore[arg-type]
    )
    message.respond_within.FromTimedelta(policy.respond)
    message.resolve_within.FromTimedelta(policy.resolve)
    set_timestamps(message, create_time=policy.created_at, update_time=policy.updated_at)
    return message
