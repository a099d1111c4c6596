"""Match rule CRUD through the real server on real PostgreSQL."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.profile.v1 import identity_pb2 as i
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations, row_counter

ADMIN = bearer(Role.ADMIN)
ANALYST = bearer(Role.ANALYST)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")


def fuzzy_rule(rule_id: str, **overrides: object) -> i.MatchRule:
    rule = i.MatchRule(
        match_rule_id=rule_id, display_name="Name, birth date and address", priority=50, disabled=True,
        description="Typos in names and swapped birth dates at the counter.",
        fuzzy=i.FuzzyMatchCriteria(comparisons=[
            i.FuzzyComparison(field=i.FUZZY_FIELD_FULL_NAME, method=i.SIMILARITY_METHOD_JARO_WINKLER, weight=3,
                              min_similarity=0.7),
            i.FuzzyComparison(field=i.FUZZY_FIELD_BIRTH_DATE, method=i.SIMILARITY_METHOD_DATE_TYPO, weight=2),
            i.FuzzyComparison(field=i.FUZZY_FIELD_ADDRESS, method=i.SIMILARITY_METHOD_TOKEN_SET, weight=1),
        ], review_threshold=0.85),
        action=i.MATCH_ACTION_SUGGEST)
    for field, value in overrides.items():
        setattr(rule, field, value)
    return rule


def rule_id() -> str:
    return f"rule-{uuid.uuid4().hex[:10]}"


async def create(profile, rule, request_id="", metadata=ADMIN):  # type: ignore[no-untyped-def]
    response = await profile.CreateMatchRule(i.CreateMatchRuleRequest(match_rule=rule, request_id=request_id),
                                             metadata=metadata)
    return response.match_rule


async def test_create_get_update_delete(profile) -> None:
    rid = rule_id()
    created = await create(profile, fuzzy_rule(rid))
    assert created.name == f"matchRules/{rid}" and created.etag and created.create_time.seconds > 0
    assert len(created.fuzzy.comparisons) == 3 and created.fuzzy.review_threshold == 0.85
    fetched = (await profile.GetMatchRule(i.GetMatchRuleRequest(name=created.name), metadata=ANALYST)).match_rule
    assert fetched == created
    changed = i.MatchRule(name=created.name, etag=created.etag, priority=7,
                          exact=i.ExactMatchCriteria(key=i.MATCH_KEY_EMAIL))
    updated = (await profile.UpdateMatchRule(i.UpdateMatchRuleRequest(
        match_rule=changed, update_mask=field_mask_pb2.FieldMask(paths=["priority", "exact"])),
        metadata=ADMIN)).match_rule
    assert updated.priority == 7 and updated.WhichOneof("criteria") == "exact" and updated.etag != created.etag
    assert updated.display_name == created.display_name
    with pytest.raises(grpc.aio.AioRpcError) as error:  # the old etag is stale now
        await profile.DeleteMatchRule(i.DeleteMatchRuleRequest(name=created.name, etag=created.etag), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.ABORTED
    await profile.DeleteMatchRule(i.DeleteMatchRuleRequest(name=created.name, etag=updated.etag), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetMatchRule(i.GetMatchRuleRequest(name=created.name), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND and error_reason(error.value) == "MATCH_RULE_NOT_FOUND"


async def test_a_taken_id_is_already_exists_and_a_retry_returns_the_first(profile) -> None:
    rid, request_id = rule_id(), str(uuid.uuid4())
    first = await create(profile, fuzzy_rule(rid), request_id=request_id)
    again = await create(profile, fuzzy_rule(rid), request_id=request_id)
    assert again == first
    with pytest.raises(grpc.aio.AioRpcError) as reused:  # the same key with another body (AIP-155)
        await create(profile, fuzzy_rule(rid, display_name="different"), request_id=request_id)
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, fuzzy_rule(rid))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_rules_are_listed_in_priority_order(profile) -> None:
    made = [await create(profile, fuzzy_rule(rule_id(), priority=p)) for p in (900, 901, 902)]
    seen, token = [], ""
    while True:
        page = await profile.ListMatchRules(i.ListMatchRulesRequest(page_size=2, page_token=token), metadata=ANALYST)
        seen += [r.name for r in page.match_rules]
        token = page.next_page_token
        if not token:
            break
    ours = [n for n in seen if n in {m.name for m in made}]
    assert ours == [m.name for m in made]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"match_rule_id": "Not_Valid"}, "match_rule.match_rule_id"),
    ({"display_name": ""}, "match_rule.display_name"),
    ({"priority": 5000}, "match_rule.priority"),
    ({"action": i.MATCH_ACTION_AUTO_MERGE}, "match_rule.fuzzy.auto_merge_threshold"),
])
async def test_bad_rules_are_named_and_write_nothing(profile, profile_service, overrides, field) -> None:
    count = row_counter(profile_service)
    before = await count("match_rule")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, fuzzy_rule(rule_id(), **overrides))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await count("match_rule") == before


async def test_a_method_unsuited_to_its_field_and_missing_criteria_are_named(profile) -> None:
    rule = fuzzy_rule(rule_id())
    rule.fuzzy.comparisons[1].method = i.SIMILARITY_METHOD_TOKEN_SET
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, rule)
    assert "match_rule.fuzzy.comparisons[1].method" in field_violations(error.value)
    rule = fuzzy_rule(rule_id())
    rule.ClearField("fuzzy")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, rule)
    assert "match_rule.criteria" in field_violations(error.value)


async def test_update_validates_the_result_and_the_mask(profile) -> None:
    created = await create(profile, fuzzy_rule(rule_id()))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.UpdateMatchRule(i.UpdateMatchRuleRequest(
            match_rule=i.MatchRule(name=created.name, action=i.MATCH_ACTION_AUTO_MERGE),
            update_mask=field_mask_pb2.FieldMask(paths=["action"])), metadata=ADMIN)
    assert "match_rule.fuzzy.auto_merge_threshold" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.UpdateMatchRule(i.UpdateMatchRuleRequest(
            match_rule=i.MatchRule(name=created.name, match_rule_id="renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["match_rule_id"])), metadata=ADMIN)
    assert "update_mask" in field_violations(error.value)
    fetched = (await profile.GetMatchRule(i.GetMatchRuleRequest(name=created.name), metadata=ADMIN)).match_rule
    assert fetched == created


async def test_only_admins_write_rules(profile) -> None:
    for metadata in (ANALYST, RM):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create(profile, fuzzy_rule(rule_id()), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListMatchRules(i.ListMatchRulesRequest(), metadata=RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
