"""GetClassificationThresholds and UpdateClassificationThresholds against the real server: an
admin moves the activity and lifecycle thresholds, customers follow on their next change and in
the next scheduled run, the change is on the feed; bad changes name the field and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.type import money_pb2

from crm.segment.v1 import classification_pb2 as cpb
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.classifications.service import ClassificationSchedule
from crmkit.testing import field_violations, rows_about

from .test_classification_rpcs import ADMIN, ANALYST, RM, VIP_ROW, classification, classifier, on_change, seed

NAME = "classificationThresholds"
# Busy but not core by the defaults: 2 activities in 90 days where core asks for 3.
FAIRLY_BUSY = {**VIP_ROW, "transaction_count_90d": 1, "login_count_30d": 1}


async def current(segments: Any, metadata: Any = ADMIN) -> cpb.ClassificationThresholds:
    return (await segments.GetClassificationThresholds(pb.GetClassificationThresholdsRequest(name=NAME),
                                                       metadata=metadata)).thresholds


async def update(segments: Any, thresholds: cpb.ClassificationThresholds, *paths: str, metadata: Any = ADMIN
                 ) -> cpb.ClassificationThresholds:
    return (await segments.UpdateClassificationThresholds(pb.UpdateClassificationThresholdsRequest(
        thresholds=thresholds, update_mask=FieldMask(paths=list(paths))), metadata=metadata)).thresholds


@pytest.fixture
async def restore_thresholds(segments: Any) -> AsyncIterator[None]:
    """The session's other tests classify against the shipped defaults."""
    before = await current(segments)
    yield
    before.ClearField("etag")  # whatever the test changed goes back
    await update(segments, before, "activity", "lifecycle")


async def test_the_shipped_defaults_are_readable_by_every_role(segments: Any) -> None:
    thresholds = await current(segments, metadata=RM)
    assert thresholds.name == NAME and thresholds.etag
    a, lc = thresholds.activity, thresholds.lifecycle
    assert (a.core_recency_days, a.core_window_days, a.core_min_activities, a.core_min_products,
            a.active_window_days) == (30, 90, 3, 3, 180)
    assert (lc.acquisition_days, lc.trend_window_days, lc.growth_min_percent, lc.decline_min_drop_percent,
            lc.decline_min_net_closures) == (180, 90, 10, 30, 1)
    assert lc.churn_max_aum == money_pb2.Money(currency_code="CNY", units=100)


async def test_an_admin_lowers_the_core_bar_and_customers_follow(segment_service: Any, segments: Any,
                                                                  restore_thresholds: None) -> None:
    customer_id = await seed(segment_service, **FAIRLY_BUSY)
    await on_change(segment_service, customer_id)
    assert (await classification(segments, customer_id)).classification.activity_layer == cpb.ACTIVITY_LAYER_ACTIVE
    _, runtime = segment_service
    schedule = ClassificationSchedule(db=runtime.db, classifications=classifier(segment_service),
                                      interval=timedelta(days=1), check_seconds=3600, batch_size=500)
    await schedule.run_if_due()
    assert not await schedule.due()
    published = await rows_about(segment_service, "outbox_event", NAME)

    before = await current(segments)
    changed = cpb.ClassificationThresholds(name=NAME, etag=before.etag)
    changed.activity.core_min_activities = 2
    changed.activity.active_window_days = 1  # not in the mask: ignored
    updated = await update(segments, changed, "activity.core_min_activities")

    assert updated.activity.core_min_activities == 2
    assert updated.activity.active_window_days == 180 and updated.lifecycle == before.lifecycle
    assert updated.etag != before.etag and updated.updater == "admin-1"
    assert await current(segments) == updated
    assert await rows_about(segment_service, "outbox_event", NAME) == published + 1
    # The change calls for a run, and the customer's next change already uses it.
    assert await schedule.due()
    await on_change(segment_service, customer_id)
    assert (await classification(segments, customer_id)).classification.activity_layer == cpb.ACTIVITY_LAYER_CORE


async def test_a_whole_group_is_replaced_by_its_mask(segments: Any, restore_thresholds: None) -> None:
    lifecycle = cpb.LifecycleStageThresholds(
        acquisition_days=90, growth_min_percent=20, decline_min_drop_percent=50, decline_min_net_closures=2,
        churn_max_aum=money_pb2.Money(currency_code="CNY", units=50, nanos=500_000_000))
    updated = await update(segments, cpb.ClassificationThresholds(name=NAME, lifecycle=lifecycle), "lifecycle")
    assert (updated.lifecycle.acquisition_days, updated.lifecycle.growth_min_percent,
            updated.lifecycle.decline_min_drop_percent, updated.lifecycle.decline_min_net_closures) == (90, 20, 50, 2)
    assert updated.lifecycle.trend_window_days == 90  # output only
    assert updated.lifecycle.churn_max_aum == lifecycle.churn_max_aum


@pytest.mark.parametrize(("paths", "edit", "fields"), [
    ([], lambda t: None, {"update_mask"}),
    (["activity.core_window_days"], lambda t: None, {"update_mask"}),
    (["lifecycle.trend_window_days", "colour"], lambda t: None, {"update_mask"}),
    (["activity.core_recency_days"], lambda t: setattr(t.activity, "core_recency_days", 0),
     {"thresholds.activity.core_recency_days"}),
    (["activity.core_recency_days"], lambda t: setattr(t.activity, "core_recency_days", 91),
     {"thresholds.activity.core_recency_days"}),
    (["activity"], lambda t: None, {"thresholds.activity.core_recency_days", "thresholds.activity.core_min_activities",
                                    "thresholds.activity.active_window_days", "thresholds.activity.core_window_days"}),
    (["lifecycle.decline_min_drop_percent", "lifecycle.growth_min_percent"],
     lambda t: (setattr(t.lifecycle, "decline_min_drop_percent", 101), setattr(t.lifecycle, "growth_min_percent", 0)),
     {"thresholds.lifecycle.decline_min_drop_percent", "thresholds.lifecycle.growth_min_percent"}),
    (["lifecycle.churn_max_aum"], lambda t: None, {"thresholds.lifecycle.churn_max_aum"}),
    (["lifecycle.churn_max_aum"], lambda t: t.lifecycle.churn_max_aum.CopyFrom(
        money_pb2.Money(currency_code="CNY", units=-1)), {"thresholds.lifecycle.churn_max_aum"}),
    (["lifecycle.churn_max_aum"], lambda t: t.lifecycle.churn_max_aum.CopyFrom(
        money_pb2.Money(currency_code="USD", units=1)), {"thresholds.lifecycle.churn_max_aum.currency_code"}),
], ids=["no-mask", "output-only-window", "unknown-paths", "recency-zero", "recency-beyond-window", "empty-group",
        "percent-ranges", "amount-missing", "amount-negative", "amount-currency"])
async def test_bad_changes_name_the_field_and_change_nothing(segment_service: Any, segments: Any, paths: list[str],
                                                             edit: Any, fields: set[str]) -> None:
    before = await current(segments)
    published = await rows_about(segment_service, "outbox_event", NAME)
    changed = cpb.ClassificationThresholds(name=NAME)
    edit(changed)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(segments, changed, *paths)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error.value)) == fields
    assert await current(segments) == before
    assert await rows_about(segment_service, "outbox_event", NAME) == published


async def test_wrong_name_stale_etag_and_other_roles_are_refused(segments: Any) -> None:
    before = await current(segments)
    with pytest.raises(grpc.aio.AioRpcError) as misnamed:
        await update(segments, cpb.ClassificationThresholds(name="thresholds"), "activity.core_min_activities")
    assert misnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(misnamed.value)) == {"thresholds.name"}
    stale = cpb.ClassificationThresholds(name=NAME, etag="0")
    stale.activity.core_min_activities = 4
    with pytest.raises(grpc.aio.AioRpcError) as aborted:
        await update(segments, stale, "activity.core_min_activities")
    assert aborted.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await update(segments, cpb.ClassificationThresholds(name=NAME), "activity", metadata=ANALYST)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as bad_get:
        await segments.GetClassificationThresholds(pb.GetClassificationThresholdsRequest(name="x"), metadata=RM)
    assert bad_get.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await current(segments) == before
