"""SegmentService segment RPCs against a real PostgreSQL, through a real in-process server."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from crm.common.v1 import change_event_pb2
from crm.segment.v1 import segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crmkit.auth import Role
from crmkit.outbox import parse_cursor
from crmkit.testing import bearer, error_reason, field_violations, read_changes

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
OTHER_ANALYST = bearer(Role.ANALYST, subject="analyst-2")
MARKETER = bearer(Role.MARKETER, subject="marketer-1")
ADMIN = bearer(Role.ADMIN)
SERVICE = bearer(Role.SERVICE, subject="system:campaign")
RELATIONSHIP_MANAGER = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
DOMAIN = "segment.crm"


async def create(segments, segment, metadata=ANALYST, request_id=""):  # type: ignore[no-untyped-def]
    response = await segments.CreateSegment(pb.CreateSegmentRequest(segment=segment, request_id=request_id),
                                            metadata=metadata)
    return response.segment


async def get(segments, name, metadata=ANALYST):  # type: ignore[no-untyped-def]
    return (await segments.GetSegment(pb.GetSegmentRequest(name=name), metadata=metadata)).segment


async def update(segments, segment, paths, metadata=ANALYST):  # type: ignore[no-untyped-def]
    return (await segments.UpdateSegment(pb.UpdateSegmentRequest(
        segment=segment, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=metadata)).segment


async def watch(segments, request, *, until, metadata=SERVICE):  # type: ignore[no-untyped-def]
    """Events of the change feed until `until(events)` holds (at most 10 seconds)."""
    return await read_changes(segments.WatchChanges(request, metadata=metadata), until=until, seconds=10, strict=True)


# --- create and get ---------------------------------------------------------------------------


async def test_create_then_get_returns_the_same_segment(segments, new_segment) -> None:
    sent = new_segment(refresh_interval=duration_pb2.Duration(seconds=6 * 3600))
    created = await create(segments, sent)
    fetched = await get(segments, created.name, metadata=MARKETER)
    assert created.name == f"segments/{sent.segment_id}"
    assert fetched == created
    assert fetched.display_name == sent.display_name
    assert fetched.rule == sent.rule
    assert fetched.evaluation_mode == segment_pb2.SEGMENT_EVALUATION_MODE_BATCH
    assert fetched.refresh_interval.seconds == 6 * 3600
    assert fetched.rule_version == 1
    assert fetched.member_count == 0 and not fetched.HasField("last_materialise_time")
    assert fetched.creator == "analyst-1"
    assert fetched.etag and fetched.HasField("create_time") and fetched.HasField("update_time")


async def test_an_empty_id_is_generated_and_an_unspecified_mode_is_batch(segments, new_segment) -> None:
    created = await create(segments, new_segment(
        segment_id="", evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_UNSPECIFIED))
    assert created.segment_id.startswith("segment-")
    assert created.evaluation_mode == segment_pb2.SEGMENT_EVALUATION_MODE_BATCH
    assert (await get(segments, created.name)).segment_id == created.segment_id


async def test_names_are_trimmed_and_a_real_time_rule_may_read_real_time_features(segments, new_segment) -> None:
    created = await create(segments, new_segment(
        display_name="  Recent   app users  " + uuid.uuid4().hex[:6],
        rule="now - last_login_time < duration('168h') && login_count_30d > 3",
        evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME))
    assert created.display_name.startswith("Recent app users ")
    assert created.evaluation_mode == segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"segment_id": "Has_Capitals"}, "segment.segment_id"),
        ({"segment_id": "9starts-with-digit"}, "segment.segment_id"),
        ({"segment_id": "ends-with-dash-"}, "segment.segment_id"),
        ({"display_name": "   "}, "segment.display_name"),
        ({"display_name": "x" * 101}, "segment.display_name"),
        ({"description": "d" * 1001}, "segment.description"),
        ({"rule": ""}, "segment.rule"),
        ({"rule": "aum > " + "1" * 10_000}, "segment.rule"),
        ({"rule": "aum >= "}, "segment.rule"),
        ({"rule": "amu > 1000.0"}, "segment.rule"),
        ({"rule": "aum + 1"}, "segment.rule"),
        ({"rule": "exec(aum)"}, "segment.rule"),
        ({"rule": "age > 30.0"}, "segment.rule"),
        ({"rule": "product_categories.exists(c, c == 'FUND')"}, "segment.rule"),
        ({"rule": 'value_tier == "VALUE_TIER_VIP"',
          "evaluation_mode": segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME}, "segment.rule"),
        ({"evaluation_mode": 7}, "segment.evaluation_mode"),
        ({"refresh_interval": duration_pb2.Duration(seconds=1800)}, "segment.refresh_interval"),
        ({"refresh_interval": duration_pb2.Duration(seconds=32 * 86400)}, "segment.refresh_interval"),
        ({"refresh_interval": duration_pb2.Duration(seconds=-3600)}, "segment.refresh_interval"),
    ],
)
async def test_bad_field_is_invalid_argument_naming_it_and_writes_nothing(
    segments, new_segment, count_rows, overrides, field,
) -> None:
    sent = new_segment(**overrides)
    before = (await count_rows("segment"), await count_rows("outbox_event"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(segments, sent)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert (await count_rows("segment"), await count_rows("outbox_event")) == before


async def test_a_rule_that_does_not_parse_is_named_with_its_position(segments, new_segment) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(segments, new_segment(rule="aum >= 1000.0 &&\n  && age < 35"))
    description = field_violations(error.value)["segment.rule"]
    assert "line 2, column 3" in description
    assert "SYNTAX_ERROR" in description


async def test_a_type_mismatch_is_refused_with_its_position_and_reason(segments, new_segment) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(segments, new_segment(rule="aum >= 1000.0 &&\n  age > 30.0"))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    description = field_violations(error.value)["segment.rule"]
    assert "line 2, column 9" in description and "TYPE_MISMATCH" in description


async def test_every_bad_field_is_named_at_once(segments, new_segment) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(segments, new_segment(segment_id="Bad Id", display_name="", rule="amu > 1"))
    assert {"segment.segment_id", "segment.display_name", "segment.rule"} <= set(field_violations(error.value))


async def test_a_taken_id_or_display_name_is_already_exists(segments, new_segment) -> None:
    sent = new_segment()
    await create(segments, sent)
    with pytest.raises(grpc.aio.AioRpcError) as same_id:
        await create(segments, new_segment(segment_id=sent.segment_id))
    assert same_id.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(same_id.value, domain=DOMAIN) == "SEGMENT_EXISTS"
    with pytest.raises(grpc.aio.AioRpcError) as same_name:
        await create(segments, new_segment(display_name=sent.display_name.upper()))
    assert same_name.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(same_name.value, domain=DOMAIN) == "DISPLAY_NAME_TAKEN"


async def test_retry_with_the_same_request_id_returns_the_first_segment(segments, new_segment, count_rows) -> None:
    request_id, segment = str(uuid.uuid4()), new_segment(segment_id="")  # a retry resends the same body
    first = await create(segments, segment, request_id=request_id)
    before = await count_rows("segment")
    again = await create(segments, segment, request_id=request_id)
    assert again == first
    assert await count_rows("segment") == before
    # The key is the caller's: another analyst's identical key creates their own segment.
    other = await create(segments, new_segment(segment_id=""), request_id=request_id, metadata=OTHER_ANALYST)
    assert other.segment_id != first.segment_id


async def test_a_request_id_that_is_not_a_uuid_is_invalid_argument(segments, new_segment) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(segments, new_segment(), request_id="not-a-uuid")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(error.value)


async def test_unknown_segment_is_not_found_and_a_bad_name_invalid(segments) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(segments, "segments/no-such-segment")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value, domain=DOMAIN) == "SEGMENT_NOT_FOUND"
    for name in ["", "customers/x", "segments/", "segments/a/b", "segments/Not A Valid Id", "segments/x\x00"]:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await get(segments, name)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "name" in field_violations(bad.value)


# --- auth ---------------------------------------------------------------------------------------


async def test_calls_without_a_valid_token_are_unauthenticated(segments) -> None:
    for metadata in [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await segments.GetSegment(pb.GetSegmentRequest(name="segments/x"), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_role_not_allowed_is_permission_denied_and_writes_nothing(segments, new_segment, count_rows) -> None:
    before = await count_rows("segment")
    for metadata in (MARKETER, RELATIONSHIP_MANAGER):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create(segments, new_segment(), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(error.value, domain=DOMAIN) == "ROLE_NOT_ALLOWED"
    assert await count_rows("segment") == before
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(segments, "segments/x", metadata=RELATIONSHIP_MANAGER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_marketers_read_but_do_not_change_segments(segments, new_segment) -> None:
    created = await create(segments, new_segment())
    assert (await get(segments, created.name, metadata=MARKETER)).name == created.name
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(segments, segment_pb2.Segment(name=created.name, description="x"), ["description"],
                     metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.DeleteSegment(pb.DeleteSegmentRequest(name=created.name), metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await get(segments, created.name)).etag == created.etag


# --- list ---------------------------------------------------------------------------------------


async def test_list_pages_in_display_name_order_with_opaque_tokens(segments, new_segment) -> None:
    marker = uuid.uuid4().hex[:8]
    names = ["delta", "Alpha", "charlie", "Bravo", "echo"]
    for name in names:
        await create(segments, new_segment(display_name=f"{marker} {name}"))
    seen, token = [], ""
    while True:
        page = await segments.ListSegments(pb.ListSegmentsRequest(
            display_name_contains=marker.upper(), page_size=2, page_token=token), metadata=MARKETER)
        assert len(page.segments) <= 2
        seen += [s.display_name for s in page.segments]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"{marker} {n}" for n in sorted(names, key=str.lower)]


async def test_a_page_token_from_another_filter_or_tampered_is_invalid_argument(segments, new_segment) -> None:
    marker = uuid.uuid4().hex[:8]
    for _ in range(2):
        await create(segments, new_segment(display_name=f"{marker} {uuid.uuid4().hex[:4]}"))
    page = await segments.ListSegments(pb.ListSegmentsRequest(display_name_contains=marker, page_size=1),
                                       metadata=ANALYST)
    assert page.next_page_token
    for request in [pb.ListSegmentsRequest(display_name_contains="other", page_token=page.next_page_token),
                    pb.ListSegmentsRequest(display_name_contains=marker, page_token=page.next_page_token + "x"),
                    pb.ListSegmentsRequest(page_size=-1)]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await segments.ListSegments(request, metadata=ANALYST)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_filters_by_feature_mode_and_creator(segments, new_segment) -> None:
    marker = uuid.uuid4().hex[:8]
    churn = await create(segments, new_segment(display_name=f"{marker} churn", rule="churn_probability > 0.7"))
    real_time = await create(segments, new_segment(
        display_name=f"{marker} rt", rule="login_count_30d == 0",
        evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME), metadata=OTHER_ANALYST)

    async def listed(**filters: object) -> list[str]:
        page = await segments.ListSegments(pb.ListSegmentsRequest(display_name_contains=marker, **filters),
                                           metadata=ANALYST)
        return [s.segment_id for s in page.segments]

    assert await listed(feature="churn_probability") == [churn.segment_id]
    assert await listed(evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME) == [real_time.segment_id]
    assert await listed(creator="analyst-2") == [real_time.segment_id]
    assert await listed() == [churn.segment_id, real_time.segment_id]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.ListSegments(pb.ListSegmentsRequest(feature="no_such_feature", display_name_contains="y" * 101),
                                    metadata=ANALYST)
    assert {"feature", "display_name_contains"} <= set(field_violations(error.value))


async def test_display_name_filter_treats_wildcards_literally(segments, new_segment) -> None:
    marker = uuid.uuid4().hex[:8]
    await create(segments, new_segment(display_name=f"{marker} 100% growth"))
    await create(segments, new_segment(display_name=f"{marker} 1000 growth"))
    page = await segments.ListSegments(pb.ListSegmentsRequest(display_name_contains=f"{marker} 100%"),
                                       metadata=ANALYST)
    assert [s.display_name for s in page.segments] == [f"{marker} 100% growth"]


# --- update -------------------------------------------------------------------------------------


async def test_update_changes_masked_fields_only_and_checks_the_etag(segments, new_segment) -> None:
    created = await create(segments, new_segment())
    changed = segment_pb2.Segment(name=created.name, etag=created.etag, description="Now for the spring campaign.",
                                  rule="ignored because not in the mask > 1")
    updated = await update(segments, changed, ["description"])
    assert updated.description == "Now for the spring campaign."
    assert updated.rule == created.rule
    assert updated.rule_version == 1
    assert updated.etag != created.etag
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(segments, changed, ["description"])
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert error_reason(error.value, domain=DOMAIN) == "ETAG_MISMATCH"
    assert (await get(segments, created.name)).etag == updated.etag


async def test_changing_the_rule_or_mode_bumps_the_rule_version(segments, new_segment) -> None:
    created = await create(segments, new_segment())
    same_rule = await update(segments, segment_pb2.Segment(name=created.name, rule=created.rule), ["rule"])
    assert same_rule.rule_version == 1
    new_rule = await update(segments, segment_pb2.Segment(name=created.name, rule="aum >= 1000000.0"), ["rule"])
    assert new_rule.rule_version == 2 and new_rule.rule == "aum >= 1000000.0"
    real_time = await update(segments, segment_pb2.Segment(
        name=created.name, evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME), ["evaluation_mode"])
    assert real_time.rule_version == 3
    listed = await segments.ListSegments(pb.ListSegmentsRequest(feature="aum", creator="analyst-1",
                                                                display_name_contains=created.display_name),
                                         metadata=ANALYST)
    assert [s.segment_id for s in listed.segments] == [created.segment_id]


async def test_update_refresh_interval_can_be_cleared(segments, new_segment) -> None:
    created = await create(segments, new_segment(refresh_interval=duration_pb2.Duration(seconds=86400)))
    cleared = await update(segments, segment_pb2.Segment(name=created.name), ["refresh_interval"])
    assert not cleared.HasField("refresh_interval")


@pytest.mark.parametrize(
    ("changes", "paths", "field"),
    [
        ({}, [], "update_mask"),
        ({"segment_id": "other"}, ["segment_id"], "update_mask"),
        ({"creator": "me"}, ["creator"], "update_mask"),
        ({"rule": "amu > 1"}, ["rule"], "segment.rule"),
        ({"display_name": ""}, ["display_name"], "segment.display_name"),
        ({"rule": "value_tier == 'VALUE_TIER_VIP'", "evaluation_mode": segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME},
         ["rule", "evaluation_mode"], "segment.rule"),
    ],
)
async def test_bad_update_is_invalid_argument_and_changes_nothing(
    segments, new_segment, count_rows, changes, paths, field,
) -> None:
    created = await create(segments, new_segment())
    events = await count_rows("outbox_event")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(segments, segment_pb2.Segment(name=created.name, **changes), paths)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await get(segments, created.name) == created
    assert await count_rows("outbox_event") == events


async def test_update_to_a_taken_display_name_is_already_exists(segments, new_segment) -> None:
    first = await create(segments, new_segment())
    second = await create(segments, new_segment())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(segments, segment_pb2.Segment(name=second.name, display_name=first.display_name.lower()),
                     ["display_name"])
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error.value, domain=DOMAIN) == "DISPLAY_NAME_TAKEN"
    assert await get(segments, second.name) == second
    # A segment keeps its own name under a change of case.
    renamed = await update(segments, segment_pb2.Segment(name=second.name, display_name=second.display_name.upper()),
                           ["display_name"])
    assert renamed.display_name == second.display_name.upper()


async def test_update_of_an_unknown_segment_is_not_found(segments) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(segments, segment_pb2.Segment(name="segments/no-such-segment", description="x"),
                     ["description"])
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


# --- delete -------------------------------------------------------------------------------------


async def test_delete_checks_the_etag_then_removes_the_segment(segments, new_segment) -> None:
    created = await create(segments, new_segment())
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await segments.DeleteSegment(pb.DeleteSegmentRequest(name=created.name, etag="999"), metadata=ANALYST)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    assert (await get(segments, created.name)).etag == created.etag
    await segments.DeleteSegment(pb.DeleteSegmentRequest(name=created.name, etag=created.etag), metadata=ANALYST)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await get(segments, created.name)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await segments.DeleteSegment(pb.DeleteSegmentRequest(name=created.name), metadata=ANALYST)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND
    # The display name is free again.
    await create(segments, new_segment(display_name=created.display_name))


# --- rules and features -------------------------------------------------------------------------


async def test_validate_rule_reports_a_valid_rule_with_its_features(segments) -> None:
    response = await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(
        rule='aum >= 500000.0 && age < 35 && "PAYROLL" in product_categories'), metadata=MARKETER)
    assert response.valid
    assert list(response.issues) == []
    assert list(response.referenced_features) == ["age", "aum", "product_categories"]
    assert response.real_time_capable


async def test_validate_rule_reports_issues_as_an_answer_not_an_error(segments) -> None:
    response = await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(rule="aum > 1.0 &&\n amu > 2.0"),
                                                  metadata=ANALYST)
    assert not response.valid
    [issue] = response.issues
    assert issue.severity == segment_pb2.RULE_ISSUE_SEVERITY_ERROR
    assert issue.reason == "UNKNOWN_FEATURE"
    assert '"aum"' in issue.message
    assert (issue.line, issue.column) == (2, 2)

    syntax = await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(rule="aum >> 3"), metadata=ANALYST)
    assert not syntax.valid
    assert [(i.reason, i.line, i.column) for i in syntax.issues] == [("SYNTAX_ERROR", 1, 6)]
    assert list(syntax.referenced_features) == []


async def test_validate_rule_in_real_time_mode_refuses_batch_features(segments) -> None:
    rule = "value_tier == 'VALUE_TIER_VIP' && aum > 1.0"
    batch = await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(rule=rule), metadata=ANALYST)
    assert batch.valid and not batch.real_time_capable
    real_time = await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(
        rule=rule, evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME), metadata=ANALYST)
    assert not real_time.valid
    assert [(i.reason, i.column) for i in real_time.issues] == [("NOT_REAL_TIME_FEATURE", 1)]


async def test_validate_rule_warns_about_a_rule_that_is_always_true(segments) -> None:
    response = await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(rule="true"), metadata=ANALYST)
    assert response.valid
    assert [(i.severity, i.reason) for i in response.issues] == [
        (segment_pb2.RULE_ISSUE_SEVERITY_WARNING, "ALWAYS_TRUE")]


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"rule": ""}, "rule"), ({"rule": "   "}, "rule"), ({"rule": "x" * 10_001}, "rule"),
    ({"rule": "aum > 1.0", "evaluation_mode": 9}, "evaluation_mode"),
])
async def test_validate_rule_refuses_an_empty_or_oversized_rule(segments, request_fields, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(**request_fields), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_list_features_pages_through_the_catalogue(segments) -> None:
    seen, token = [], ""
    while True:
        page = await segments.ListFeatures(pb.ListFeaturesRequest(page_size=10, page_token=token), metadata=MARKETER)
        seen += list(page.features)
        token = page.next_page_token
        if not token:
            break
    names = [f.feature for f in seen]
    assert names == sorted(names) and len(names) == len(set(names))
    aum = next(f for f in seen if f.feature == "aum")
    assert aum.name == "features/aum" and aum.type == segment_pb2.FEATURE_TYPE_DOUBLE and aum.unit == "CNY"
    tier = next(f for f in seen if f.feature == "value_tier")
    assert "VALUE_TIER_VIP" in tier.allowed_values and not tier.real_time
    real_time = await segments.ListFeatures(pb.ListFeaturesRequest(real_time_only=True), metadata=MARKETER)
    assert real_time.features and all(f.real_time for f in real_time.features)
    assert "value_tier" not in {f.feature for f in real_time.features}


# --- change feed --------------------------------------------------------------------------------


async def test_watch_changes_streams_creates_updates_and_deletes_in_order(segments, new_segment, latest_cursor) -> None:
    after = await latest_cursor()
    created = await create(segments, new_segment())
    await update(segments, segment_pb2.Segment(name=created.name, description="changed"), ["description"])
    await segments.DeleteSegment(pb.DeleteSegmentRequest(name=created.name), metadata=ANALYST)
    events = await watch(segments, pb.WatchChangesRequest(after_cursor=after), until=lambda e: len(e) >= 3)
    mine = [e for e in events if e.resource_name == created.name]
    assert [e.change_type for e in mine] == [change_event_pb2.CHANGE_TYPE_CREATED, change_event_pb2.CHANGE_TYPE_UPDATED,
                                             change_event_pb2.CHANGE_TYPE_DELETED]
    assert {e.resource_type for e in mine} == {"crm.segment.v1.Segment"}
    assert all(e.actor == "analyst-1" for e in mine)
    payload = segment_pb2.Segment()
    assert mine[1].payload.Unpack(payload)
    assert payload.description == "changed"
    assert not mine[2].payload.value
    positions = [parse_cursor(e.cursor) for e in events]
    assert positions == sorted(positions) and positions[0].seq > int(after)


async def test_watch_changes_resumes_after_a_cursor_and_filters_types(segments, new_segment) -> None:
    first = await create(segments, new_segment())
    second = await create(segments, new_segment())
    everything = await watch(segments, pb.WatchChangesRequest(resource_types=["crm.segment.v1.Segment"]),
                             until=lambda e: any(x.resource_name == second.name for x in e))
    assert {e.resource_type for e in everything} == {"crm.segment.v1.Segment"}
    cursor_of_first = next(e.cursor for e in everything if e.resource_name == first.name)
    resumed = await watch(segments, pb.WatchChangesRequest(after_cursor=cursor_of_first),
                          until=lambda e: any(x.resource_name == second.name for x in e))
    assert first.name not in {e.resource_name for e in resumed}
    only_members = pb.WatchChangesRequest(after_cursor=cursor_of_first, resource_types=["crm.segment.v1.SegmentMember"],
                                          segments=[second.name])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await watch(segments, only_members, until=lambda e: True)


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"after_cursor": "not-a-cursor"}, "after_cursor"),
    ({"segments": ["customers/x"]}, "segments[0]"),
    ({"segments": [f"segments/s{i}" for i in range(101)]}, "segments"),
])
async def test_watch_changes_refuses_bad_arguments(segments, request_fields, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await watch(segments, pb.WatchChangesRequest(**request_fields), until=lambda e: True)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_watch_changes_is_for_services_and_admins(segments) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await watch(segments, pb.WatchChangesRequest(), until=lambda e: True, metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_segment_serves_every_rpc_of_its_contract() -> None:
    # Nothing is left to the generated base (which would answer UNIMPLEMENTED).
    from crm.segment.v1 import segment_service_pb2_grpc
    from crm_segment.api.access import SERVICE
    from crm_segment.api.segment_servicer import SegmentServicer

    base = segment_service_pb2_grpc.SegmentServiceServicer
    assert [m.name for m in SERVICE.methods if getattr(SegmentServicer, m.name) is getattr(base, m.name)] == []
