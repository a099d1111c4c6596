"""Membership protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from crm.segment.v1 import segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api.segment_messages import issue_to_proto
from crm_segment.membership.model import Materialised, Member, MembershipChange, Preview
from crmkit.operations import name_of
from crmkit.values import set_timestamps


def preview_to_proto(preview: Preview) -> pb.PreviewSegmentResponse:
    # The read model holds no names, masked or not: a sample names customers by resource name.
    message = pb.PreviewSegmentResponse(
        count=preview.count, total_customers=preview.total_customers,
        samples=[segment_pb2.SampleCustomer(customer=f"customers/{c}") for c in preview.sample_customer_ids],
        warnings=[issue_to_proto(i) for i in preview.warnings])
    set_timestamps(message, features_as_of=preview.features_as_of)
    return message


def materialised_to_proto(result: Materialised) -> segment_pb2.MaterialiseSegmentResult:
    message = segment_pb2.MaterialiseSegmentResult(
        segment=f"segments/{result.segment_id}", rule_version=result.rule_version, member_count=result.member_count,
        entered_count=result.entered_count, left_count=result.left_count)
    set_timestamps(message, features_as_of=result.features_as_of)
    return message


def member_to_proto(member: Member) -> segment_pb2.SegmentMember:
    message = segment_pb2.SegmentMember(
        name=f"segments/{member.segment_id}/members/{member.customer_id}",
        customer=f"customers/{member.customer_id}", rule_version=member.rule_version)
    set_timestamps(message, enter_time=member.entered_at)
    return message


def change_to_proto(change: MembershipChange) -> segment_pb2.MembershipChange:
    message = segment_pb2.MembershipChange(
        name=f"segments/{change.segment_id}/membershipChanges/{change.change_id}",
        segment=f"segments/{change.segment_id}", customer=f"customers/{change.customer_id}",
        kind=segment_pb2.MembershipChangeKind.ValueType(change.kind),
        cause=segment_pb2.MembershipChangeCause.ValueType(change.cause), rule_version=change.rule_version,
        operation=name_of(change.operation_id) if change.operation_id is not None else "",
        source_event_id=change.source_event_id)
    set_timestamps(message, change_time=change.changed_at)
    return message
