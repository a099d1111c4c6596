"""KPI protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf.message import Message

from crm.feedback.v1 import channel_pb2, classification_pb2, kpi_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.kpis.model import KpiQuery, KpiReport, Kpis
from crm_feedback.kpis.rules import CHANNEL
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import set_timestamps


def _timestamp(parent: Message, field: str, path: str, bad: list[FieldViolation]) -> datetime | None:
    if not parent.HasField(field):
        return None
    try:
        return getattr(parent, field).ToDatetime(tzinfo=UTC)
    except ValueError:
        bad.append(FieldViolation(path, "is not a valid timestamp"))
        return None


def query_from(request: pb.GetFeedbackKpisRequest) -> KpiQuery | None:
    """None when the interval is not closed on both ends (the service says so)."""
    bad: list[FieldViolation] = []
    start = _timestamp(request.interval, "start_time", "interval.start_time", bad)
    end = _timestamp(request.interval, "end_time", "interval.end_time", bad)
    if bad:
        raise InvalidArgument(bad)
    if start is None or end is None:
        return None
    return KpiQuery(start=start, end=end, channel=request.channel, branch_id=request.branch_id,
                    touchpoint=request.touchpoint, survey=request.survey, product=request.product,
                    customer_count=request.customer_count, group_by=request.group_by)


def _kpis(kpis: Kpis, report: KpiReport) -> kpi_pb2.FeedbackKpis:
    message = kpi_pb2.FeedbackKpis(
        nps_responses=kpis.nps_responses, promoters=kpis.promoters, passives=kpis.passives,
        detractors=kpis.detractors, csat_responses=kpis.csat_responses, ces_responses=kpis.ces_responses,
        complaints_received=kpis.complaints_received,
        complaints_by_category=[kpi_pb2.CategoryComplaintCounts(
            category=classification_pb2.ComplaintCategory.ValueType(c.category), received=c.received,
            resolved=c.resolved, breached=c.breached) for c in kpis.by_category])
    for field in ("nps", "csat_average", "ces_average", "breach_rate", "respond_met_share", "resolve_met_share",
                  "complaints_per_thousand_customers"):
        value = getattr(kpis, field)
        if value is not None:
            setattr(message, field, value)
    if kpis.median_time_to_respond is not None:
        message.median_time_to_respond.FromTimedelta(kpis.median_time_to_respond)
    if kpis.median_time_to_resolve is not None:
        message.median_time_to_resolve.FromTimedelta(kpis.median_time_to_resolve)
    set_timestamps(message.interval, start_time=report.start, end_time=report.end)
    set_timestamps(message, compute_time=report.computed_at)
    return message


def _key(dimension: int, key: object) -> str:
    if dimension == CHANNEL and isinstance(key, int):
        return channel_pb2.Channel.Name(key)  # type: ignore[arg-type]
    if isinstance(key, date):
        return key.isoformat()
    return str(key)


def response_of(report: KpiReport, *, group_by: int) -> pb.GetFeedbackKpisResponse:
    return pb.GetFeedbackKpisResponse(
        kpis=_kpis(report.totals, report),
        groups=[pb.FeedbackKpisGroup(key=_key(group_by, key), kpis=_kpis(kpis, report)) for key, kpis in report.groups])
