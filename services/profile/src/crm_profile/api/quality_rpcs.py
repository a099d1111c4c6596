"""Data-quality RPC: proto -> arguments, one unit of work and one service call in it, result -> proto."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message

from crm.profile.v1 import quality_pb2
from crm_profile.quality.rules import FieldQuality, FieldThreshold, Thresholds
from crm_profile.quality.service import QualityReports
from crmkit.db import Database
from crmkit.values import timestamp


def _optional(message: Message, name: str) -> float | None:
    return getattr(message, name) if message.HasField(name) else None


def thresholds_to_domain(message: quality_pb2.QualityThresholds) -> Thresholds:
    return Thresholds(
        min_completeness_percent=_optional(message, "min_completeness_percent"),
        max_error_rate_percent=_optional(message, "max_error_rate_percent"),
        field_thresholds=tuple(FieldThreshold(t.field, _optional(t, "min_completeness_percent"),
                                              _optional(t, "max_error_rate_percent"))
                               for t in message.field_thresholds))


def thresholds_to_proto(thresholds: Thresholds) -> quality_pb2.QualityThresholds:
    message = quality_pb2.QualityThresholds(field_thresholds=[
        quality_pb2.FieldThreshold(field=t.field, min_completeness_percent=t.min_completeness_percent,
                                   max_error_rate_percent=t.max_error_rate_percent)
        for t in thresholds.field_thresholds])
    if thresholds.min_completeness_percent is not None:
        message.min_completeness_percent = thresholds.min_completeness_percent
    if thresholds.max_error_rate_percent is not None:
        message.max_error_rate_percent = thresholds.max_error_rate_percent
    return message


def _row_to_proto(row: FieldQuality) -> quality_pb2.FieldQuality:
    return quality_pb2.FieldQuality(
        field=row.field, source_system=row.source_system, population_count=row.population,
        filled_count=row.filled, completeness_percent=row.completeness_percent,
        completeness_expected=row.completeness_expected, invalid_count=row.invalid,
        error_rate_percent=row.error_rate_percent, duplicate_value_count=row.duplicates,
        violations=[quality_pb2.RuleViolationCount(rule=rule, count=n) for rule, n in row.violations],
        min_completeness_percent=row.min_completeness_percent, max_error_rate_percent=row.max_error_rate_percent,
        flags=[quality_pb2.QualityFlag.ValueType(f) for f in row.flags])


class QualityRpcs:
    """The data-quality report over every active customer."""

    _db: Database
    _quality: QualityReports

    async def GetDataQualityReport(self, request: quality_pb2.GetDataQualityReportRequest,
                                   context: grpc.aio.ServicerContext) -> quality_pb2.GetDataQualityReportResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            report = await self._quality.report(
                uow=uow, fields=list(request.fields), source_systems=list(request.source_systems),
                                                thresholds=thresholds_to_domain(request.thresholds))
        return quality_pb2.GetDataQualityReportResponse(report=quality_pb2.DataQualityReport(
            compute_time=timestamp(report.compute_time), customer_count=report.customer_count,
            thresholds=thresholds_to_proto(report.thresholds), fields=[_row_to_proto(r) for r in report.fields],
            suspected_duplicate_count=report.suspected_duplicate_count,
            flagged_field_count=report.flagged_field_count))
