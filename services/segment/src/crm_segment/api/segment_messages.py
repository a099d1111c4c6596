"""Segment protos <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.duration_pb2 import Duration

from crm.segment.v1 import segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.segments import rules
from crm_segment.segments.model import Feature, RuleAnalysis, RuleIssue, Segment
from crmkit.values import set_timestamps


def to_domain(message: segment_pb2.Segment, *, segment_id: str | None = None) -> Segment:
    """Domain segment from a request; INVALID_ARGUMENT for values that cannot even be read."""
    return Segment(
        segment_id=segment_id if segment_id is not None else message.segment_id,
        display_name=message.display_name,
        description=message.description,
        rule=message.rule,
        evaluation_mode=rules.read_evaluation_mode(message.evaluation_mode, "segment.evaluation_mode"),
        refresh_interval=_interval(message.refresh_interval) if message.HasField("refresh_interval") else None,
    )


def _interval(value: Duration) -> timedelta | None:
    return value.ToTimedelta() if value.seconds or value.nanos else None


def to_proto(segment: Segment) -> segment_pb2.Segment:
    message = segment_pb2.Segment(
        name=segment.name, segment_id=segment.segment_id, etag=segment.etag, display_name=segment.display_name,
        description=segment.description, rule=segment.rule,
        evaluation_mode=segment_pb2.SegmentEvaluationMode.ValueType(segment.evaluation_mode),
        rule_version=segment.rule_version, member_count=segment.member_count,
        last_materialise_operation=segment.last_materialise_operation, creator=segment.creator,
    )
    if segment.refresh_interval is not None:
        message.refresh_interval.FromTimedelta(segment.refresh_interval)
    set_timestamps(message, last_materialise_time=segment.last_materialised_at, create_time=segment.created_at,
                   update_time=segment.updated_at)
    return message


def issue_to_proto(issue: RuleIssue) -> segment_pb2.RuleIssue:
    return segment_pb2.RuleIssue(severity=segment_pb2.RuleIssueSeverity.ValueType(issue.severity),
                                 reason=issue.reason, message=issue.message, line=issue.line, column=issue.column)


def analysis_to_proto(analysis: RuleAnalysis) -> pb.ValidateSegmentRuleResponse:
    return pb.ValidateSegmentRuleResponse(
        valid=analysis.valid, issues=[issue_to_proto(i) for i in analysis.issues],
        referenced_features=list(analysis.referenced_features), real_time_capable=analysis.real_time_capable)


def feature_to_proto(feature: Feature) -> segment_pb2.FeatureDefinition:
    return segment_pb2.FeatureDefinition(
        name=feature.name, feature=feature.feature, type=segment_pb2.FeatureType.ValueType(feature.type),
        unit=feature.unit, description=feature.description, source=feature.source, real_time=feature.real_time,
        allowed_values=list(feature.allowed_values), nullable=feature.nullable,
    )
