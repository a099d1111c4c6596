"""Lifetime-value RPCs through a real in-process server on PostgreSQL: CDNOW's 1/10th sample put
into the read model's per-day transaction totals (as profile's event feed leaves them), fitted
through FitLifetimeValueModel (an operation with a spawned worker), read back and used to value
customers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.duration_pb2 import Duration
from google.type import decimal_pb2, interval_pb2

from crm.common.v1 import audit_pb2, operation_pb2
from crm.segment.v1 import analytics_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api import classification_messages, ltv_messages
from crm_segment.api.operation_rpcs import KINDS
from crm_segment.classifications.service import Classifications
from crm_segment.clv import rules
from crm_segment.clv.model import BgNbdParameters, CustomerSummary, FitResult, GammaGammaParameters, TimeUnit
from crm_segment.clv.service import LifetimeValues
from crm_segment.features.tables import customer_feature, feature_transaction_day
from crm_segment.tables import idempotency_key, operation, outbox_event
from crmkit.auth import Role
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import OperationRunner, Operations
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.testing import bearer, error_info, eventually, field_violations, shared_data_dir

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-7")
PREFIX = "CD-"
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="advice")
SUCCEEDED, FAILED = operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def interval(start: date, end: date) -> interval_pb2.Interval:
    message = interval_pb2.Interval()
    message.start_time.FromDatetime(_midnight(start))
    message.end_time.FromDatetime(_midnight(end))
    return message


def cdnow_days() -> dict[tuple[str, date], float]:
    """CDNOW's sample as the read model keeps it: dollars per customer and day."""
    path = shared_data_dir("CDNOW_sample.txt") / "CDNOW_sample.txt"
    days: defaultdict[tuple[str, date], float] = defaultdict(float)
    for line in path.read_text().splitlines():
        master_id, _, day, _, dollars = line.split()
        days[(PREFIX + master_id, date(int(day[:4]), int(day[4:6]), int(day[6:])))] += float(dollars)
    return days


@pytest.fixture
async def cdnow(segment_service: Any) -> dict[tuple[str, date], float]:
    """The sample in the read model, once per test session (customer ids prefixed `CD-`)."""
    days = cdnow_days()
    _, runtime = segment_service
    async with runtime.db.engine.begin() as connection:
        if await connection.scalar(sa.select(sa.func.count()).select_from(customer_feature)
                                   .where(customer_feature.c.customer_id.like(f"{PREFIX}%"))):
            return days
        customers = sorted({customer for customer, _ in days})
        await connection.execute(sa.insert(customer_feature), [
            {"customer_id": c, "features_as_of": datetime(2026, 12, 1, tzinfo=UTC), "relationship_manager_id": "rm-7",
             "branch_id": "B-cdnow"} for c in customers])
        await connection.execute(sa.insert(feature_transaction_day), [
            {"customer_id": c, "day": d, "amount": amount, "transaction_count": 1} for (c, d), amount in days.items()])
    return days


async def fit(segments: Any, **overrides: Any) -> pb.FitLifetimeValueModelResponse:
    request = pb.FitLifetimeValueModelRequest(
        display_name="CDNOW weeks 1-39", calibration_period=interval(date(1997, 1, 1), date(1997, 10, 1)),
        holdout_period=interval(date(1997, 10, 1), date(1998, 7, 1)), time_unit=Duration(seconds=7 * 86400))
    for name, value in overrides.items():
        if value is None:
            request.ClearField(name)
        elif isinstance(value, (Duration, interval_pb2.Interval, decimal_pb2.Decimal)):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return await segments.FitLifetimeValueModel(request, metadata=ANALYST)


async def finished(segments: Any, name: str) -> operation_pb2.Operation:
    async def read() -> operation_pb2.Operation:
        return (await segments.GetOperation(pb.GetOperationRequest(name=name), metadata=ANALYST)).operation
    return await eventually(read, until=lambda op: op.state in (SUCCEEDED, FAILED), seconds=120,
                            what="the fit to finish")


_FITTED: list[analytics_pb2.LifetimeValueModel] = []


@pytest.fixture
async def fitted(segments: Any, cdnow: Any) -> analytics_pb2.LifetimeValueModel:
    """The CDNOW fit, made once per session (seconds of optimiser in a spawned worker)."""
    if _FITTED:
        return _FITTED[0]
    started = await fit(segments)
    done = await finished(segments, started.operation.name)
    assert done.state == SUCCEEDED, done.error
    model = analytics_pb2.LifetimeValueModel()
    assert done.response.Unpack(model)
    _FITTED.append(model)
    return model


async def test_the_fit_through_the_rpc_reproduces_the_published_cdnow_parameters(
        segments: Any, fitted: analytics_pb2.LifetimeValueModel, cdnow: dict[tuple[str, date], float]) -> None:
    read = (await segments.GetLifetimeValueModel(pb.GetLifetimeValueModelRequest(name=fitted.name),
                                                 metadata=ANALYST)).lifetime_value_model
    assert read == fitted
    assert read.state == SUCCEEDED and read.bg_nbd.converged
    assert (read.customer_count, read.repeat_customer_count) == (2357, 946)
    for got, published in [(read.bg_nbd.r, 0.243), (read.bg_nbd.alpha, 4.414), (read.bg_nbd.a, 0.793),
                           (read.bg_nbd.b, 2.426), (read.gamma_gamma.p, 6.25), (read.gamma_gamma.q, 3.74),
                           (read.gamma_gamma.gamma, 15.44)]:
        assert got == pytest.approx(published, rel=0.01)
    assert read.bg_nbd.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    # Defaults of its predictions, and the calibration as asked (end exclusive).
    assert read.horizon.seconds == 365 * 86400 and read.annual_discount_rate.value == "0.08"
    assert read.calibration_period.end_time.ToDatetime(tzinfo=UTC) == _midnight(date(1997, 10, 1))
    # Weeks 40-78: the purchase days made, and the model's prediction of them (it underpredicts
    # this sample's second year by about 12 %, as the published fit does its spike of returns).
    actual = sum(1 for (_, day) in cdnow if date(1997, 10, 1) <= day < date(1998, 7, 1))
    assert read.holdout_evaluation.actual_transactions == actual
    assert read.holdout_evaluation.predicted_transactions == pytest.approx(actual, rel=0.15)
    assert read.holdout_evaluation.mean_absolute_error > 0
    listed = await segments.ListOperations(pb.ListOperationsRequest(kind="segment.ltv_fit"), metadata=ANALYST)
    assert fitted.operation in [o.name for o in listed.operations]
    assert "segment.ltv_fit" in KINDS


def _params(model: analytics_pb2.LifetimeValueModel) -> FitResult:
    b, g = model.bg_nbd, model.gamma_gamma
    return FitResult(BgNbdParameters(b.r, b.alpha, b.a, b.b, b.log_likelihood, 0),
                     GammaGammaParameters(g.p, g.q, g.gamma, g.log_likelihood, 0), 0.0)


async def test_a_customers_value_under_the_model(segments: Any, fitted: analytics_pb2.LifetimeValueModel,
                                                 cdnow: dict[tuple[str, date], float]) -> None:
    customer = f"{PREFIX}00004"
    response = await segments.GetCustomerLifetimeValue(pb.GetCustomerLifetimeValueRequest(
        audit=AUDIT, customer=f"customers/{customer}", model=fitted.name), metadata=RM)
    value = response.lifetime_value
    # The summary runs to today: every CDNOW purchase is decades old, so the customer is likely gone.
    days = sorted(d for (c, d) in cdnow if c == customer)
    today = datetime.now(UTC).date()
    assert value.frequency == len(days) - 1
    assert value.age == pytest.approx((today - days[0]).days / 7)
    assert value.recency == pytest.approx((days[-1] - days[0]).days / 7)
    summary = CustomerSummary(customer, value.frequency, value.recency, value.age,
                              sum(cdnow[(customer, d)] for d in days[1:]) / (len(days) - 1))
    (expected,) = rules.values_over([summary], _params(fitted), unit=TimeUnit.WEEKS, horizon_days=365,
                                    annual_discount_rate=0.08)
    assert value.expected_transactions == pytest.approx(expected.expected_purchases)
    assert value.probability_alive == pytest.approx(expected.probability_alive)
    assert 0 <= value.probability_alive < 0.5
    assert value.expected_value.currency_code == "CNY"
    assert value.expected_value.units * 100 + value.expected_value.nanos // 10**7 == round(expected.clv * 100)
    assert value.horizon.seconds == 365 * 86400 and value.model == fitted.name

    # The latest model is used when none is named; a longer horizon expects more.
    longer = (await segments.GetCustomerLifetimeValue(pb.GetCustomerLifetimeValueRequest(
        audit=AUDIT, customer=f"customers/{customer}", horizon=Duration(seconds=3650 * 86400),
        annual_discount_rate=decimal_pb2.Decimal(value="0")), metadata=ANALYST)).lifetime_value
    assert longer.expected_transactions > value.expected_transactions


async def test_lifetime_value_becomes_a_feature_once_a_model_exists(
        segment_service: Any, segments: Any, fitted: analytics_pb2.LifetimeValueModel) -> None:
    _, runtime = segment_service
    page_tokens = PageTokens(runtime.settings.derived_key("segment.page-token"))
    operations = Operations(runtime.db, operation, page_tokens, kinds=KINDS)
    runner = OperationRunner(operations=operations, service="test", error_domain="t")
    lifetime_values = LifetimeValues(db=runtime.db, operations=operations, runner=runner,
                                     idempotency=IdempotencyKeys(idempotency_key),
                                     model_message=ltv_messages.model_to_proto)
    classifier = Classifications(outbox=Outbox(outbox_event), lifetime_values=lifetime_values, page_tokens=page_tokens,
                                 classification_message=classification_messages.classification_to_proto,
                                 tier_message=classification_messages.tier_to_proto,
                                 thresholds_message=classification_messages.thresholds_to_proto)
    async with runtime.db.unit_of_work() as connection:
        (classified,) = await classifier.classify(connection, [f"{PREFIX}00004"], boundaries=None)
    assert classified.expected_lifetime_value_minor is not None

    got = (await segments.GetCustomerClassification(pb.GetCustomerClassificationRequest(
        customer=f"customers/{PREFIX}00004", audit=AUDIT), metadata=ANALYST)).classification
    assert got.HasField("expected_lifetime_value")
    preview = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule='branch_id == "B-cdnow" && expected_lifetime_value >= 0.0'), metadata=ANALYST)
    assert preview.count >= 1


@pytest.mark.parametrize(("overrides", "fields"), [
    ({"display_name": ""}, {"display_name"}),
    ({"calibration_period": None}, {"calibration_period"}),
    ({"calibration_period": interval(date(1997, 1, 1), date(1997, 3, 1)), "holdout_period": None},
     {"calibration_period"}),
    ({"holdout_period": interval(date(1997, 10, 2), date(1997, 10, 20))},
     {"holdout_period.start_time", "holdout_period"}),
    ({"calibration_period": interval(date(2026, 1, 1), date(2099, 1, 1)), "holdout_period": None},
     {"calibration_period.end_time"}),
    ({"time_unit": Duration(seconds=3 * 86400), "penalizer_coefficient": 2.0},
     {"time_unit", "penalizer_coefficient"}),
    ({"horizon": Duration(seconds=10 * 86400), "annual_discount_rate": decimal_pb2.Decimal(value="abc")},
     {"horizon", "annual_discount_rate"}),
    ({"population_segment": "segment/x"}, {"population_segment"}),
])
async def test_bad_fit_requests_name_every_field_and_start_nothing(segments: Any, count_rows: Any,
                                                                   overrides: dict[str, Any], fields: set[str]) -> None:
    before = (await count_rows("operation"), await count_rows("lifetime_value_model"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await fit(segments, **overrides)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error.value)) == fields
    assert (await count_rows("operation"), await count_rows("lifetime_value_model")) == before


async def test_an_unknown_population_segment_is_not_found(segments: Any, count_rows: Any) -> None:
    before = await count_rows("lifetime_value_model")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await fit(segments, population_segment="segments/no-such-segment")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error.value).reason == "SEGMENT_NOT_FOUND"
    assert await count_rows("lifetime_value_model") == before


async def test_a_fit_without_repeat_customers_fails_and_cannot_value(segments: Any, cdnow: Any) -> None:
    started = await fit(segments, calibration_period=interval(date(2001, 1, 1), date(2001, 12, 1)),
                        holdout_period=None, request_id=str(uuid.uuid4()))
    done = await finished(segments, started.operation.name)
    assert done.state == FAILED and done.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "repeat transactions" in done.error.message
    model = (await segments.GetLifetimeValueModel(pb.GetLifetimeValueModelRequest(
        name=started.lifetime_value_model), metadata=ANALYST)).lifetime_value_model
    assert model.state == FAILED and not model.HasField("bg_nbd")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.GetCustomerLifetimeValue(pb.GetCustomerLifetimeValueRequest(
            audit=AUDIT, customer=f"customers/{PREFIX}00004", model=model.name), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value).reason == "LTV_MODEL_NOT_READY"


async def test_a_repeated_request_id_returns_the_first_fit(segments: Any, cdnow: Any, count_rows: Any) -> None:
    request_id = str(uuid.uuid4())
    first = await fit(segments, request_id=request_id, calibration_period=interval(date(2001, 1, 1),
                                                                                   date(2001, 12, 1)),
                      holdout_period=None)
    models = await count_rows("lifetime_value_model")
    again = await fit(segments, request_id=request_id, calibration_period=interval(date(2001, 1, 1),
                                                                                   date(2001, 12, 1)),
                      holdout_period=None)
    assert (again.operation.name, again.lifetime_value_model) == (first.operation.name, first.lifetime_value_model)
    assert await count_rows("lifetime_value_model") == models
    await finished(segments, first.operation.name)


async def test_reads_of_unknown_or_malformed_names(segments: Any, cdnow: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await segments.GetLifetimeValueModel(pb.GetLifetimeValueModelRequest(
            name=f"lifetimeValueModels/{uuid.uuid4().hex}"), metadata=ANALYST)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await segments.GetLifetimeValueModel(pb.GetLifetimeValueModelRequest(name="lifetimeValueModels/x"),
                                             metadata=ANALYST)
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as nobody:
        await segments.GetCustomerLifetimeValue(pb.GetCustomerLifetimeValueRequest(
            audit=AUDIT, customer="customers/C-nobody"), metadata=ANALYST)
    assert nobody.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(nobody.value).reason == "CUSTOMER_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await segments.GetCustomerLifetimeValue(pb.GetCustomerLifetimeValueRequest(
            customer="customer/x", model="models/1", horizon=Duration(seconds=86400 + 1),
            annual_discount_rate=decimal_pb2.Decimal(value="1.5")), metadata=ANALYST)
    assert set(field_violations(bad.value)) == {"customer", "model", "horizon", "annual_discount_rate",
                                                "audit.purpose"}
    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await segments.GetCustomerLifetimeValue(pb.GetCustomerLifetimeValueRequest(
            audit=AUDIT, customer=f"customers/{PREFIX}00004"),
            metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-9"))
    assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED


