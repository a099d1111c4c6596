"""Classification RPCs through a real in-process server on PostgreSQL: customers seeded into the
read model directly, as profile's feed would leave them, then classified the two ways the service
does it (in the transaction of a feed change, and by the scheduled run)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.field_mask_pb2 import FieldMask
from google.type import money_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.segment.v1 import classification_pb2 as cpb
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api import classification_messages
from crm_segment.classifications import model
from crm_segment.classifications.service import Classifications, ClassificationSchedule
from crm_segment.features.tables import customer_feature
from crm_segment.tables import outbox_event
from crmkit.auth import Role
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.testing import assert_enum_mirrors, bearer, error_info, field_violations, rows_about

ADMIN = bearer(Role.ADMIN, subject="admin-1")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-7")
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="branch visit")
# A wealth customer: 600,000 CNY on average (VIP), busy and stable (core, mature).
VIP_ROW = {"average_aum_90d": 600_000, "aum": 610_000, "aum_change_90d": 0, "product_count": 4,
           "tenure_days": 2000, "days_since_last_activity": 3, "transaction_count_90d": 9, "login_count_30d": 4,
           "holdings_opened_90d": 0, "holdings_closed_90d": 0, "recency_days": 3, "frequency": 40,
           "monetary": 90_000, "rfm_window_days": 365}


def classifier(service: tuple[Any, Any]) -> Classifications:
    """The service's classifier on the test server's database (the app wires the same)."""
    _, runtime = service
    return Classifications(outbox=Outbox(outbox_event), lifetime_values=None,
                           page_tokens=PageTokens(runtime.settings.derived_key("segment.page-token")),
                           classification_message=classification_messages.classification_to_proto,
                           tier_message=classification_messages.tier_to_proto,
                           thresholds_message=classification_messages.thresholds_to_proto)


async def seed(service: tuple[Any, Any], **values: Any) -> str:
    customer_id = f"C-{uuid.uuid4().hex[:12]}"
    _, runtime = service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.insert(customer_feature), [{
            "customer_id": customer_id, "branch_id": "B-classify", "features_as_of": AS_OF,
            "relationship_manager_id": "rm-7", **values}])
    return customer_id


async def on_change(service: tuple[Any, Any], customer_id: str) -> None:
    """What the feed consumer does after applying an event about the customer."""
    _, runtime = service
    event = change_event_pb2.ChangeEvent(resource_name=f"customers/{customer_id}", event_id=str(uuid.uuid4()))
    async with runtime.db.unit_of_work() as connection:
        await classifier(service).on_change(connection, event)


async def classification(segments: Any, customer_id: str, metadata: Any = ANALYST
                         ) -> pb.GetCustomerClassificationResponse:
    return await segments.GetCustomerClassification(
        pb.GetCustomerClassificationRequest(customer=f"customers/{customer_id}", audit=AUDIT), metadata=metadata)


def test_domain_enums_mirror_the_contract() -> None:
    assert_enum_mirrors(model.ValueTier, cpb.ValueTier, prefix="VALUE_TIER_")
    assert_enum_mirrors(model.ActivityLayer, cpb.ActivityLayer, prefix="ACTIVITY_LAYER_")
    assert_enum_mirrors(model.LifecycleStage, cpb.LifecycleStage, prefix="LIFECYCLE_STAGE_")
    assert_enum_mirrors(model.RfmSegment, cpb.RfmSegment, prefix="RFM_SEGMENT_")


async def test_a_change_classifies_the_customer_and_publishes_the_move(segment_service: Any, segments: Any) -> None:
    customer_id = await seed(segment_service, **VIP_ROW)
    unclassified = await classification(segments, customer_id)
    assert unclassified.classification.value_tier == cpb.VALUE_TIER_UNSPECIFIED

    await on_change(segment_service, customer_id)

    response = await classification(segments, customer_id, metadata=RM)
    c = response.classification
    assert (c.value_tier, c.activity_layer, c.lifecycle_stage) == (
        cpb.VALUE_TIER_VIP, cpb.ACTIVITY_LAYER_CORE, cpb.LIFECYCLE_STAGE_MATURE)
    assert c.qualifying_aum == money_pb2.Money(currency_code="CNY", units=600_000)
    today = datetime.now(UTC).date()
    assert (c.value_tier_since.year, c.value_tier_since.month, c.value_tier_since.day) == (
        today.year, today.month, today.day)
    # VIP's service standard rides along: feedback's deadline, campaign's caps.
    assert c.service_standard.dedicated_relationship_manager
    assert c.service_standard.max_response_time.seconds == 12 * 3600
    assert c.service_standard.care_programme == "Wealth relationship care"
    assert response.features_as_of.ToDatetime(tzinfo=UTC) == AS_OF
    assert c.features_as_of.ToDatetime(tzinfo=UTC) == AS_OF
    assert c.classify_time.ToDatetime(tzinfo=UTC) > AS_OF
    assert await rows_about(segment_service, "outbox_event", f"customers/{customer_id}") == 1
    # Both reads are in the audit log: who read which customer's classification, and why.
    assert await rows_about(segment_service, "audit_record", f"customers/{customer_id}") == 2

    # Classifying again with nothing changed publishes nothing more.
    await on_change(segment_service, customer_id)
    assert await rows_about(segment_service, "outbox_event", f"customers/{customer_id}") == 1


async def test_a_downgrade_waits_for_the_tiers_grace(segment_service: Any, segments: Any) -> None:
    customer_id = await seed(segment_service, **VIP_ROW)
    await on_change(segment_service, customer_id)
    _, runtime = segment_service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.update(customer_feature).where(customer_feature.c.customer_id == customer_id)
                                 .values(average_aum_90d=60_000))
    await on_change(segment_service, customer_id)

    c = (await classification(segments, customer_id)).classification
    # VIP keeps the tier for its 3 months' grace; the due date says when it moves down.
    assert c.value_tier == cpb.VALUE_TIER_VIP
    assert c.HasField("downgrade_due_on")
    assert c.qualifying_aum.units == 60_000


async def test_the_scheduled_run_scores_rfm_and_feeds_the_catalogue(segment_service: Any, segments: Any) -> None:
    branch = f"B-rfm-{uuid.uuid4().hex[:6]}"
    champion = await seed(segment_service, branch_id=branch, **{**VIP_ROW, "recency_days": 0, "frequency": 10**6,
                                                                 "monetary": 10**9})
    never = await seed(segment_service, branch_id=branch, **{**VIP_ROW, "recency_days": None, "frequency": 0,
                                                              "monetary": 0})
    _, runtime = segment_service

    assert await classifier(segment_service).run(db=runtime.db, batch_size=7) > 0

    best = (await classification(segments, champion)).classification.rfm
    assert (best.cell, best.segment) == ("555", cpb.RFM_SEGMENT_CHAMPIONS)
    assert best.frequency == 10**6 and best.recency_days == 0
    assert best.window.end_time.ToDatetime(tzinfo=UTC) - best.window.start_time.ToDatetime(tzinfo=UTC) == \
        timedelta(days=365)
    lost = (await classification(segments, never)).classification.rfm
    assert (lost.cell, lost.segment) == ("111", cpb.RFM_SEGMENT_LOST)
    # Rules read the classification like any feature.
    preview = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule=f'branch_id == "{branch}" && rfm_segment == "RFM_SEGMENT_CHAMPIONS" && value_tier == "VALUE_TIER_VIP"'
             ' && activity_layer == "ACTIVITY_LAYER_CORE"'), metadata=ANALYST)
    assert preview.count == 1 and preview.samples[0].customer == f"customers/{champion}"

    # A customer who changes between runs is scored against the run's cuts.
    newcomer = await seed(segment_service, branch_id=branch, **{**VIP_ROW, "recency_days": 0, "frequency": 10**6,
                                                                 "monetary": 10**9})
    await on_change(segment_service, newcomer)
    assert (await classification(segments, newcomer)).classification.rfm.cell == "555"


async def test_the_schedule_runs_again_after_a_tier_definition_changes(segment_service: Any, segments: Any,
                                                                       restore_tiers: Any) -> None:
    _, runtime = segment_service
    schedule = ClassificationSchedule(db=runtime.db, classifications=classifier(segment_service),
                                      interval=timedelta(days=1), check_seconds=3600, batch_size=500)
    await schedule.run_if_due()
    assert not await schedule.due()
    tier = (await segments.ListValueTiers(pb.ListValueTiersRequest(), metadata=ADMIN)).value_tiers[1]
    tier.service_standard.care_programme = "Wealth care, renewed"
    await segments.UpdateValueTier(pb.UpdateValueTierRequest(
        value_tier=tier, update_mask=FieldMask(paths=["service_standard.care_programme"])), metadata=ADMIN)
    assert await schedule.due()
    assert await schedule.run_if_due()
    assert not await schedule.due()


async def test_classification_bad_input(segment_service: Any, segments: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await classification(segments, "C-nobody")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(unknown.value).reason == "CUSTOMER_NOT_FOUND"
    removed = await seed(segment_service, removed=True, **VIP_ROW)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await classification(segments, removed)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await segments.GetCustomerClassification(pb.GetCustomerClassificationRequest(customer="customer/x"),
                                                 metadata=ANALYST)
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(malformed.value)) == {"customer", "audit.purpose"}
    others = await seed(segment_service, relationship_manager_id="rm-9", **VIP_ROW)
    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await classification(segments, others, metadata=RM)
    assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- value tiers ------------------------------------------------------------------------------


@pytest.fixture
async def restore_tiers(segments: Any) -> AsyncIterator[None]:
    """Tier definitions are shared by every test of the session: put them back as they were."""
    before = (await segments.ListValueTiers(pb.ListValueTiersRequest(), metadata=ADMIN)).value_tiers
    yield
    for tier in before:
        current = next(t for t in (await segments.ListValueTiers(pb.ListValueTiersRequest(), metadata=ADMIN))
                       .value_tiers if t.name == tier.name)
        restored = cpb.ValueTierDefinition()
        restored.CopyFrom(tier)
        restored.etag = current.etag
        await segments.UpdateValueTier(pb.UpdateValueTierRequest(value_tier=restored, update_mask=FieldMask(paths=[
            "display_name", "min_average_aum", "min_expected_lifetime_value", "min_inflow_90d", "min_product_count",
            "downgrade_grace_months", "service_standard"])), metadata=ADMIN)


async def tiers(segments: Any) -> dict[str, cpb.ValueTierDefinition]:
    return {t.name: t for t in (await segments.ListValueTiers(pb.ListValueTiersRequest(), metadata=RM)).value_tiers}


async def test_the_five_tiers_in_rank_order_with_standards_and_counts(segment_service: Any, segments: Any) -> None:
    await on_change(segment_service, await seed(segment_service, **VIP_ROW))
    listed = (await segments.ListValueTiers(pb.ListValueTiersRequest(), metadata=RM)).value_tiers
    assert [t.name for t in listed] == ["valueTiers/private", "valueTiers/vip", "valueTiers/mass-affluent",
                                        "valueTiers/potential", "valueTiers/mass"]
    assert [t.rank for t in listed] == [1, 2, 3, 4, 5]
    private, vip, _, potential, mass = listed
    assert private.min_average_aum == money_pb2.Money(currency_code="CNY", units=6_000_000)
    assert vip.customer_count >= 1 and vip.updater
    assert potential.min_expected_lifetime_value.units == 10_000 and potential.min_product_count == 2
    assert not mass.HasField("min_average_aum")
    assert private.service_standard.max_response_time.seconds == 4 * 3600
    assert (mass.service_standard.max_marketing_contacts_per_week,
            mass.service_standard.max_marketing_contacts_per_month) == (2, 4)
    paged = await segments.ListValueTiers(pb.ListValueTiersRequest(page_size=2), metadata=RM)
    rest = await segments.ListValueTiers(pb.ListValueTiersRequest(page_size=10, page_token=paged.next_page_token),
                                         metadata=RM)
    assert [t.name for t in [*paged.value_tiers, *rest.value_tiers]] == [t.name for t in listed]


async def test_an_admin_changes_a_threshold_and_the_feed_carries_it(segment_service: Any, segments: Any,
                                                                    restore_tiers: Any) -> None:
    vip = (await tiers(segments))["valueTiers/vip"]
    before = await rows_about(segment_service, "outbox_event", "valueTiers/vip")
    vip.min_average_aum.units = 400_000
    vip.service_standard.max_marketing_contacts_per_month = 2

    updated = (await segments.UpdateValueTier(pb.UpdateValueTierRequest(value_tier=vip, update_mask=FieldMask(
        paths=["min_average_aum", "service_standard.max_marketing_contacts_per_month"])), metadata=ADMIN)).value_tier

    assert updated.min_average_aum.units == 400_000
    assert updated.service_standard.max_marketing_contacts_per_month == 2
    assert updated.service_standard.max_marketing_contacts_per_week == 1  # not in the mask: kept
    assert updated.etag != vip.etag and updated.updater == "admin-1"
    assert (await tiers(segments))["valueTiers/vip"] == updated
    assert await rows_about(segment_service, "outbox_event", "valueTiers/vip") == before + 1
    # The etag read before the change is stale now.
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await segments.UpdateValueTier(pb.UpdateValueTierRequest(value_tier=vip, update_mask=FieldMask(
            paths=["display_name"])), metadata=ADMIN)
    assert stale.value.code() == grpc.StatusCode.ABORTED


def _amount(units: int, currency: str = "CNY") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=units)


@pytest.mark.parametrize(("name", "change", "paths", "field"), [
    # Above private's threshold: VIP would shadow private.
    ("valueTiers/vip", {"min_average_aum": _amount(7_000_000)}, ["min_average_aum"], "value_tier.min_average_aum"),
    # Below mass affluent's: mass affluent could never be reached (named on the changed tier).
    ("valueTiers/vip", {"min_average_aum": _amount(10_000)}, ["min_average_aum"], "value_tier.min_average_aum"),
    ("valueTiers/vip", {"min_average_aum": _amount(-5)}, ["min_average_aum"], "value_tier.min_average_aum"),
    ("valueTiers/vip", {"min_average_aum": _amount(500_000, "USD")}, ["min_average_aum"],
     "value_tier.min_average_aum.currency_code"),
    ("valueTiers/private", {"min_average_aum": None}, ["min_average_aum"], "value_tier.min_average_aum"),
    ("valueTiers/mass", {"min_average_aum": _amount(1)}, ["min_average_aum"], "value_tier.min_average_aum"),
    ("valueTiers/potential", {"min_inflow_90d": _amount(0)}, ["min_inflow_90d"], "value_tier.min_inflow_90d"),
    ("valueTiers/vip", {"downgrade_grace_months": 13}, ["downgrade_grace_months"],
     "value_tier.downgrade_grace_months"),
    ("valueTiers/vip", {"display_name": ""}, ["display_name"], "value_tier.display_name"),
    ("valueTiers/vip", {"service_standard.max_marketing_contacts_per_week": 5},
     ["service_standard.max_marketing_contacts_per_week"],
     "value_tier.service_standard.max_marketing_contacts_per_week"),
    ("valueTiers/vip", {"service_standard.max_response_time": 90}, ["service_standard.max_response_time"],
     "value_tier.service_standard.max_response_time"),
    ("valueTiers/vip", {"service_standard.max_response_time": 15 * 24 * 3600},
     ["service_standard.max_response_time"], "value_tier.service_standard.max_response_time"),
    ("valueTiers/vip", {"service_standard.care_programme": ""}, ["service_standard.care_programme"],
     "value_tier.service_standard.care_programme"),
    ("valueTiers/vip", {}, ["rank"], "update_mask"),
    ("valueTiers/vip", {}, [], "update_mask"),
    ("valueTiers/gold", {}, ["display_name"], "value_tier.name"),
])
async def test_bad_tier_changes_name_the_field_and_change_nothing(
        segment_service: Any, segments: Any, name: str, change: dict[str, Any], paths: list[str], field: str) -> None:
    before = await tiers(segments)
    published = await rows_about(segment_service, "outbox_event", "valueTiers")
    tier = cpb.ValueTierDefinition()
    tier.CopyFrom(before.get(name, before["valueTiers/vip"]))
    tier.name = name
    for path, value in change.items():
        target, leaf = (tier.service_standard, path.split(".")[1]) if "." in path else (tier, path)
        if value is None:
            target.ClearField(leaf)
        elif leaf == "max_response_time":
            target.max_response_time.seconds = value
        elif isinstance(value, money_pb2.Money):
            getattr(target, leaf).CopyFrom(value)
        else:
            setattr(target, leaf, value)

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.UpdateValueTier(pb.UpdateValueTierRequest(value_tier=tier, update_mask=FieldMask(paths=paths)),
                                       metadata=ADMIN)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value), field_violations(error.value)
    assert await tiers(segments) == before
    assert await rows_about(segment_service, "outbox_event", "valueTiers") == published


async def test_only_an_admin_changes_tiers(segments: Any) -> None:
    vip = (await tiers(segments))["valueTiers/vip"]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.UpdateValueTier(pb.UpdateValueTierRequest(value_tier=vip, update_mask=FieldMask(
            paths=["display_name"])), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


