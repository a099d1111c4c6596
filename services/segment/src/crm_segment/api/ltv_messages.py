"""Lifetime-value protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from google.protobuf.duration_pb2 import Duration
from google.type import decimal_pb2, interval_pb2

from crm.common.v1 import operation_pb2
from crm.segment.v1 import analytics_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api.classification_messages import money
from crm_segment.classifications.model import MINOR_PER_UNIT
from crm_segment.clv import rules
from crm_segment.clv.model import FitSettings, Prediction, StoredModel
from crm_segment.segments.rules import SEGMENT_NAME
from crmkit.resources import ResourceName
from crmkit.validation import Violations
from crmkit.values import set_timestamps

MODEL_NAME = ResourceName("lifetimeValueModels/{model_id}", id_pattern="[0-9a-f]{32}")
_DAY = timedelta(days=1)


def _days(interval: interval_pb2.Interval, field: str, v: Violations) -> tuple[date | None, date | None]:
    """(first day, day after the last) of a whole-day UTC interval; None for an unset end."""
    ends: list[date | None] = []
    for end in ("start_time", "end_time"):
        if not interval.HasField(end):
            ends.append(None)
            continue
        moment = getattr(interval, end).ToDatetime(tzinfo=UTC)
        if v.check(moment.time() == datetime.min.time(), f"{field}.{end}", "must be midnight UTC (whole days)"):
            ends.append(moment.date())
        else:
            ends.append(None)
    return ends[0], ends[1]


def decimal_of(value: decimal_pb2.Decimal, field: str, v: Violations) -> float | None:
    if not value.value:
        return None
    try:
        number = float(Decimal(value.value))
    except (InvalidOperation, ValueError):
        v.add(field, "must be a decimal number such as 0.08")
        return None
    return number if math.isfinite(number) else None


def horizon_days(value: Duration, present: bool) -> float | None:
    return value.ToTimedelta() / _DAY if present else None


def fit_settings(request: pb.FitLifetimeValueModelRequest, *, today: datetime) -> FitSettings:
    """The request's settings; INVALID_ARGUMENT naming every bad field. Periods are whole UTC days,
    end exclusive: the calibration's last day is the day before its end."""
    v = Violations()
    start, end = _days(request.calibration_period, "calibration_period", v)
    holdout = None
    if request.HasField("holdout_period"):
        holdout = _days(request.holdout_period, "holdout_period", v)
    segment_id = ""
    if request.population_segment and SEGMENT_NAME.check(request.population_segment, "population_segment", v):
        segment_id = SEGMENT_NAME.id_in(request.population_segment) or ""
    unit_days = None
    if request.HasField("time_unit"):
        days = request.time_unit.ToTimedelta() / _DAY
        unit_days = int(days) if days in (1, 7) else -1
    settings = rules.check_fit(
        display_name=request.display_name, calibration=(start, end), holdout=holdout, unit_days=unit_days,
        population_segment_id=segment_id, penalizer=request.penalizer_coefficient,
        horizon_days=horizon_days(request.horizon, request.HasField("horizon")),
        annual_discount_rate=decimal_of(request.annual_discount_rate, "annual_discount_rate", v),
        today=today.date() + _DAY, violations=v)
    v.raise_if_any()
    # Stored as inclusive days: the calibration ends the day before its (exclusive) end.
    return dataclasses.replace(settings, calibration_end=settings.calibration_end - _DAY)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def model_to_proto(model: StoredModel) -> analytics_pb2.LifetimeValueModel:
    s = model.settings
    message = analytics_pb2.LifetimeValueModel(
        name=model.name, display_name=s.display_name, state=operation_pb2.OperationState.ValueType(model.state),
        operation=f"operations/{model.operation_id}",
        time_unit=Duration(seconds=s.unit.days * 86400),
        population_segment=f"segments/{s.population_segment_id}" if s.population_segment_id else "",
        penalizer_coefficient=s.penalizer, customer_count=model.customer_count or 0,
        repeat_customer_count=model.repeat_customer_count or 0, creator=model.creator,
        horizon=Duration(seconds=s.horizon_days * 86400),
        annual_discount_rate=decimal_pb2.Decimal(value=repr(s.annual_discount_rate)))
    set_timestamps(message.calibration_period, start_time=_midnight(s.calibration_start),
                   end_time=_midnight(s.calibration_end) + _DAY)
    if s.holdout_start is not None and s.holdout_end is not None:
        set_timestamps(message.holdout_period, start_time=_midnight(s.holdout_start), end_time=_midnight(s.holdout_end))
    if model.result is not None:
        b, g = model.result.bgnbd, model.result.gamma_gamma
        message.bg_nbd.CopyFrom(analytics_pb2.BgNbdParameters(r=b.r, alpha=b.alpha, a=b.a, b=b.b,
                                                              log_likelihood=b.log_likelihood, converged=True))
        message.gamma_gamma.CopyFrom(analytics_pb2.GammaGammaParameters(
            p=g.p, q=g.q, gamma=g.gamma, log_likelihood=g.log_likelihood, converged=True))
        message.frequency_value_correlation = model.result.frequency_value_correlation
    if model.holdout is not None:
        message.holdout_evaluation.CopyFrom(analytics_pb2.HoldoutEvaluation(
            predicted_transactions=model.holdout.predicted, actual_transactions=model.holdout.actual,
            mean_absolute_error=model.holdout.mean_absolute_error))
    set_timestamps(message, create_time=model.created_at, end_time=model.fitted_at)
    return message


def prediction_to_proto(p: Prediction) -> analytics_pb2.CustomerLifetimeValue:
    message = analytics_pb2.CustomerLifetimeValue(
        customer=f"customers/{p.customer_id}", model=f"lifetimeValueModels/{p.model_id}",
        horizon=Duration(seconds=p.horizon_days * 86400),
        annual_discount_rate=decimal_pb2.Decimal(value=repr(p.annual_discount_rate)),
        frequency=p.summary.frequency, recency=p.summary.recency, age=p.summary.age,
        expected_transactions=p.value.expected_purchases, probability_alive=p.value.probability_alive,
        expected_transaction_value=money(round(p.value.expected_spend * MINOR_PER_UNIT)),
        expected_value=money(round(p.value.clv * MINOR_PER_UNIT)))
    set_timestamps(message, compute_time=p.computed_at)
    return message
