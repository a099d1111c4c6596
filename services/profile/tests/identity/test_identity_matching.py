"""FindMatches, the background matcher's candidates, DismissMatchCandidate and LookupCustomer,
through the real server on real PostgreSQL.

Match rules are global, so the rules these tests enable are deleted at the end of each test, and
every customer made here has identifiers and a name no other test uses.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy as sa
from google.type import date_pb2, postal_address_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2
from crm.profile.v1 import identity_pb2 as i
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.outbox import parse_cursor
from crmkit.testing import bearer, error_reason, eventually, field_violations

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT)
ADMIN = bearer(Role.ADMIN)
ANALYST = bearer(Role.ANALYST)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
CHANNEL = bearer(Role.CHANNEL_APP, subject="counter-app")


def word(rng: random.Random) -> str:
    return rng.choice("BDFGKLMNPRSTVZ") + "".join(rng.choice("aeiou") + rng.choice("bdgklmnprstvz")
                                                  for _ in range(3))


def person(new_customer, rng: random.Random | None = None, **overrides):  # type: ignore[no-untyped-def]
    """A customer nobody else in the test session resembles."""
    rng = rng or random.Random()
    values = {
        "full_name": f"{word(rng)} {word(rng)}",
        "birth_date": date_pb2.Date(year=rng.randint(1940, 2000), month=rng.randint(1, 12), day=rng.randint(1, 28)),
        "id_document": customer_pb2.IdDocument(type=customer_pb2.ID_DOCUMENT_TYPE_PASSPORT,
                                               number=f"E{rng.randint(10**7, 10**8 - 1)}", issuing_country="CN"),
        "mobile_phone": f"+86139{rng.randint(10**7, 10**8 - 1)}",
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "address": postal_address_pb2.PostalAddress(region_code="CN", locality="Hangzhou",
                                                    address_lines=[f"{rng.randint(1, 999)} Wensan Road"]),
    }
    values.update(overrides)
    return new_customer(**values)


async def create(profile, customer, metadata=RM):  # type: ignore[no-untyped-def]
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=customer), metadata=metadata)).customer


async def rule(profile, rule_id, **fields):  # type: ignore[no-untyped-def]
    made = i.MatchRule(match_rule_id=rule_id, display_name=rule_id, priority=fields.pop("priority", 100),
                       action=fields.pop("action", i.MATCH_ACTION_SUGGEST), **fields)
    return (await profile.CreateMatchRule(i.CreateMatchRuleRequest(match_rule=made), metadata=ADMIN)).match_rule


@pytest.fixture
async def rules(profile) -> AsyncIterator[list[str]]:
    """Names of rules to delete after the test (they apply to every customer while they exist)."""
    made: list[str] = []
    yield made
    for name in made:
        await profile.DeleteMatchRule(i.DeleteMatchRuleRequest(name=name), metadata=ADMIN)


def fuzzy(threshold: float = 0.85) -> i.FuzzyMatchCriteria:
    return i.FuzzyMatchCriteria(comparisons=[
        i.FuzzyComparison(field=i.FUZZY_FIELD_FULL_NAME, method=i.SIMILARITY_METHOD_JARO_WINKLER, weight=3,
                          min_similarity=0.85),
        i.FuzzyComparison(field=i.FUZZY_FIELD_BIRTH_DATE, method=i.SIMILARITY_METHOD_DATE_TYPO, weight=2),
    ], review_threshold=threshold)


async def find(profile, rule_names, *, customer="", probe=None, metadata=ANALYST):  # type: ignore[no-untyped-def]
    request = i.FindMatchesRequest(match_rules=rule_names, audit=AUDIT)
    if probe is not None:
        request.probe.CopyFrom(probe)
    else:
        request.customer = customer
    return list((await profile.FindMatches(request, metadata=metadata)).matches)


async def test_exact_rules_match_on_blind_indexes(profile, new_customer) -> None:
    tag = uuid.uuid4().hex[:8]
    phone_rule = await rule(profile, f"exact-phone-{tag}", disabled=True,
                            exact=i.ExactMatchCriteria(key=i.MATCH_KEY_MOBILE_PHONE))
    email_rule = await rule(profile, f"exact-email-{tag}", disabled=True, priority=1,
                            exact=i.ExactMatchCriteria(key=i.MATCH_KEY_EMAIL))
    first = await create(profile, person(new_customer))
    same_phone = await create(profile, person(new_customer, mobile_phone=first.mobile_phone))
    same_both = await create(profile, person(new_customer, mobile_phone=first.mobile_phone,
                                             email=first.email.upper()))
    await create(profile, person(new_customer))
    found = await find(profile, [phone_rule.name, email_rule.name], customer=first.name)
    assert {(m.customer, m.match_rule, m.score) for m in found} == {
        (same_phone.name, phone_rule.name, 1.0), (same_both.name, email_rule.name, 1.0)}  # first rule by priority


async def test_fuzzy_rules_find_typos_in_names_and_birth_dates(profile, new_customer) -> None:
    rng = random.Random()
    fuzzy_rule = await rule(profile, f"fuzzy-{uuid.uuid4().hex[:8]}", disabled=True, fuzzy=fuzzy(0.85))
    original = await create(profile, person(new_customer, rng, birth_date=date_pb2.Date(year=1977, month=4, day=9)))
    name = original.full_name
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    similar = await create(profile, person(new_customer, full_name=typo,
                                           birth_date=date_pb2.Date(year=1977, month=9, day=4)))  # swapped
    await create(profile, person(new_customer, full_name="Cyjj Qwyx",  # same birth date, another name
                                 birth_date=date_pb2.Date(year=1977, month=4, day=9)))
    found = await find(profile, [fuzzy_rule.name], customer=original.name)
    assert [m.customer for m in found] == [similar.name]
    assert 0.85 <= found[0].score < 1 and {s.field for s in found[0].similarities} == {
        i.FUZZY_FIELD_FULL_NAME, i.FUZZY_FIELD_BIRTH_DATE}


async def test_a_probe_is_matched_without_being_stored(profile, new_customer, profile_service) -> None:
    fuzzy_rule = await rule(profile, f"fuzzy-{uuid.uuid4().hex[:8]}", disabled=True, fuzzy=fuzzy(0.9))
    stored = await create(profile, person(new_customer))
    probe = person(new_customer, full_name=stored.full_name, birth_date=stored.birth_date, customer_id="")
    found = await find(profile, [fuzzy_rule.name], probe=probe)
    assert [m.customer for m in found] == [stored.name] and found[0].score == 1.0
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await find(profile, [fuzzy_rule.name], probe=person(new_customer, mobile_phone="12345"))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "probe.mobile_phone" in field_violations(error.value)


async def test_find_matches_needs_a_known_rule_and_a_subject(profile, new_customer) -> None:
    stored = await create(profile, person(new_customer))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await find(profile, ["matchRules/no-such-rule"], customer=stored.name)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.FindMatches(i.FindMatchesRequest(audit=AUDIT), metadata=ANALYST)
    assert "subject" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await find(profile, [], customer=stored.name, metadata=RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def candidates(profile, **filters):  # type: ignore[no-untyped-def]
    response = await profile.ListMatchCandidates(i.ListMatchCandidatesRequest(**filters), metadata=ANALYST)
    return list(response.match_candidates)


async def test_the_matcher_files_candidates_that_a_steward_dismisses(profile, new_customer, rules,
                                                                     profile_service) -> None:
    made = await rule(profile, f"suggest-email-{uuid.uuid4().hex[:8]}",
                      exact=i.ExactMatchCriteria(key=i.MATCH_KEY_EMAIL))
    rules.append(made.name)
    older = await create(profile, person(new_customer, onboarded_on=date_pb2.Date(year=2001, month=1, day=1)))
    newer = await create(profile, person(new_customer, email=older.email))
    found = await eventually(lambda: candidates(profile, customer=newer.name), what="a candidate")
    assert len(found) == 1
    candidate = found[0]
    assert list(candidate.customers) == [older.name, newer.name]  # older first
    assert candidate.match_rule == made.name and candidate.score == 1.0
    assert candidate.state == i.MATCH_CANDIDATE_STATE_PENDING and not candidate.review_conflict
    matches = await find(profile, [made.name], customer=older.name)
    assert matches[0].match_candidate == candidate.name
    dismissed = (await profile.DismissMatchCandidate(i.DismissMatchCandidateRequest(
        name=candidate.name, reason="twins, checked at the branch"), metadata=ADMIN)).match_candidate
    assert dismissed.state == i.MATCH_CANDIDATE_STATE_DISMISSED and dismissed.resolved_by == "tester"
    again = (await profile.DismissMatchCandidate(i.DismissMatchCandidateRequest(name=candidate.name),
                                                 metadata=ADMIN)).match_candidate
    assert again == dismissed  # a retry changes nothing
    assert await candidates(profile, customer=newer.name) == []
    assert [c.name for c in await candidates(profile, customer=newer.name,
                                             state=i.MATCH_CANDIDATE_STATE_DISMISSED)] == [candidate.name]
    # A change to either customer does not suggest the dismissed pair again.
    await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=newer.name, occupation="pilot"),
        update_mask={"paths": ["occupation"]}, audit=AUDIT), metadata=RM)
    await caught_up(profile_service)  # the matcher has read the update
    assert await candidates(profile, customer=newer.name) == []


async def test_candidate_lists_filter_and_page(profile, new_customer, rules) -> None:
    made = await rule(profile, f"suggest-phone-{uuid.uuid4().hex[:8]}",
                      exact=i.ExactMatchCriteria(key=i.MATCH_KEY_MOBILE_PHONE))
    rules.append(made.name)
    first = await create(profile, person(new_customer))
    for _ in range(3):
        await create(profile, person(new_customer, mobile_phone=first.mobile_phone))
    found = await eventually(lambda: _at_least(profile, made.name, 6), what="six candidates")
    assert len(found) == 6  # every pair of the four
    page = await profile.ListMatchCandidates(i.ListMatchCandidatesRequest(match_rule=made.name, page_size=4),
                                             metadata=ANALYST)
    rest = await profile.ListMatchCandidates(i.ListMatchCandidatesRequest(
        match_rule=made.name, page_size=4, page_token=page.next_page_token), metadata=ANALYST)
    assert len(page.match_candidates) == 4 and len(rest.match_candidates) == 2
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListMatchCandidates(i.ListMatchCandidatesRequest(min_score=2), metadata=ANALYST)
    assert "min_score" in field_violations(error.value)


async def _at_least(profile, rule_name: str, count: int):  # type: ignore[no-untyped-def]
    found = await candidates(profile, match_rule=rule_name)
    return found if len(found) >= count else None


async def caught_up(profile_service) -> None:  # type: ignore[no-untyped-def]
    """Wait until the matcher has read the whole change feed so far and its name keys are
    complete: a matcher that saw no fuzzy rule skips to the feed's tail without keys, and the
    first fuzzy rule then starts a backfill of every customer's key."""
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        tail = (await connection.execute(sa.text("SELECT coalesce(max(cursor), 0) FROM outbox_event"))).scalar()

    async def done() -> bool:
        async with runtime.db.engine.connect() as connection:
            cursor, keys_ready, keys_wanted = (await connection.execute(sa.text(
                "SELECT cursor, name_keys_ready,"
                " EXISTS (SELECT 1 FROM match_rule WHERE criteria ? 'fuzzy') FROM matcher_state"))).one()
            position = parse_cursor(cursor)
            # Read through: no event numbered up to the tail sorts after the matcher's position.
            behind = (await connection.execute(sa.text(
                "SELECT EXISTS (SELECT 1 FROM outbox_event WHERE cursor <= :tail"
                " AND (xid, cursor) > (CAST(CAST(:xid AS text) AS xid8), :seq))"),
                {"tail": tail, "xid": str(position.xid), "seq": position.seq})).scalar()
        return bool(not behind and (keys_ready or not keys_wanted))

    # Generous: the matcher may first work through a backlog other suites left in this database
    # (an import of 10,000 customers), and a passing test waits no longer for it.
    await eventually(done, seconds=120, what="the matcher through the feed with its name keys")


async def test_a_same_name_candidate_survives_a_crowded_birthday(
    profile, new_customer, profile_service, monkeypatch,
) -> None:
    # A large bank has thousands of customers born near anyone's birthday: more than the pool
    # holds. The name-key block goes in first, so the crowd cannot push a same-name candidate out.
    monkeypatch.setattr("crm_profile.identity.rules.MAX_POOL", 3)
    made = await rule(profile, f"fuzzy-crowd-{uuid.uuid4().hex[:8]}", disabled=True, fuzzy=i.FuzzyMatchCriteria(
        comparisons=[i.FuzzyComparison(field=i.FUZZY_FIELD_FULL_NAME, method=i.SIMILARITY_METHOD_JARO_WINKLER,
                                       weight=1)], review_threshold=0.85))
    rng = random.Random()
    born = date_pb2.Date(year=rng.randint(1940, 2000), month=rng.randint(1, 12), day=rng.randint(1, 28))
    original = await create(profile, person(new_customer, rng, birth_date=born))
    for _ in range(5):
        await create(profile, person(new_customer, rng, birth_date=born))
    first, last = original.full_name.split()
    variant = await create(profile, person(new_customer, rng, full_name=f"{first[0]}{'a' if first[1] != 'a' else 'e'}"
                                                                         f"{first[2:]} {last}",
                                           birth_date=date_pb2.Date(year=born.year, month=born.month,
                                                                    day=born.day % 28 + 1)))
    await caught_up(profile_service)
    assert variant.name in [m.customer for m in await find(profile, [made.name], customer=original.name)]


async def test_an_auto_merge_rule_merges_at_once_unless_review_is_needed(
    profile, new_customer, rules, profile_service,
) -> None:
    await caught_up(profile_service)  # only this test's customers are matched under the rule
    shared_email = f"{uuid.uuid4().hex[:12]}@example.com"
    made = await rule(profile, f"auto-email-{uuid.uuid4().hex[:8]}", action=i.MATCH_ACTION_AUTO_MERGE,
                      exact=i.ExactMatchCriteria(key=i.MATCH_KEY_EMAIL))
    rules.append(made.name)
    older = await create(profile, person(new_customer, email=shared_email, risk_tolerance=3,
                                         onboarded_on=date_pb2.Date(year=2003, month=1, day=1)))
    newer = await create(profile, person(new_customer, email=shared_email, risk_tolerance=3, occupation="chef"))

    async def merged():  # type: ignore[no-untyped-def]
        got = await profile.GetCustomer(pb.GetCustomerRequest(name=newer.name, audit=AUDIT), metadata=ADMIN)
        return got.customer if got.customer.state == customer_pb2.CUSTOMER_STATE_MERGED else None

    gone = await eventually(merged, what="the newer customer merged")
    assert gone is not None and gone.merged_into == older.name
    merges = (await profile.ListMerges(i.ListMergesRequest(parent=older.name), metadata=ANALYST)).merges
    assert merges[0].match_rule == made.name and merges[0].merged_by == "system:matcher"
    survivor = await profile.GetCustomer(pb.GetCustomerRequest(name=older.name, audit=AUDIT), metadata=ADMIN)
    assert survivor.customer.occupation == "chef"  # set beats empty
    # Different risk tolerances need a steward: a candidate, no merge.
    third = await create(profile, person(new_customer, email=shared_email, risk_tolerance=5))
    found = await eventually(lambda: candidates(profile, customer=third.name), what="a candidate")
    assert found and found[0].review_conflict
    got = await profile.GetCustomer(pb.GetCustomerRequest(name=third.name, audit=AUDIT), metadata=ADMIN)
    assert got.customer.state == customer_pb2.CUSTOMER_STATE_ACTIVE


async def test_lookup_by_every_identifier(profile, new_customer) -> None:
    sent = person(new_customer, external_ids=[customer_pb2.ExternalId(source_system="core-banking",
                                                                       id=f"CB-{uuid.uuid4().hex[:10]}")])
    stored = await create(profile, sent)

    async def lookup(metadata=CHANNEL, **identifier):  # type: ignore[no-untyped-def]
        response = await profile.LookupCustomer(i.LookupCustomerRequest(audit=AUDIT, **identifier),
                                                metadata=metadata)
        return [c.name for c in response.customers]

    assert await lookup(mobile_phone=stored.mobile_phone) == [stored.name]
    assert await lookup(email=stored.email.upper()) == [stored.name]
    assert await lookup(id_document=customer_pb2.IdDocument(
        type=customer_pb2.ID_DOCUMENT_TYPE_PASSPORT, number=stored.id_document.number.lower(),
        issuing_country="CN")) == [stored.name]
    assert await lookup(external_id=sent.external_ids[0]) == [stored.name]
    masked = await profile.LookupCustomer(i.LookupCustomerRequest(audit=AUDIT, mobile_phone=stored.mobile_phone),
                                          metadata=ANALYST)
    assert "mobile_phone" in masked.customers[0].masked_fields
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await lookup(mobile_phone="+8613000000000")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await lookup(mobile_phone="13800138000")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "mobile_phone" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await lookup()
    assert "identifier" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await lookup(metadata=bearer(Role.SERVICE), email=stored.email)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    outside = await create(profile, person(new_customer, relationship_manager_id="rm-other"), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as error:  # not in the RM's book: as if absent
        await lookup(metadata=RM, email=outside.email)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value) == "CUSTOMER_NOT_FOUND"


async def test_names_that_sound_alike_are_paired_through_the_blind_name_key(
    profile, new_customer, profile_service,
) -> None:
    made = await rule(profile, f"fuzzy-name-{uuid.uuid4().hex[:8]}", disabled=True, fuzzy=i.FuzzyMatchCriteria(
        comparisons=[i.FuzzyComparison(field=i.FUZZY_FIELD_FULL_NAME, method=i.SIMILARITY_METHOD_JARO_WINKLER,
                                       weight=1)], review_threshold=0.85))
    original = await create(profile, person(new_customer, birth_date=date_pb2.Date(year=1950, month=1, day=1)))
    first, last = original.full_name.split()
    sounds_alike = f"{first[0]}{'a' if first[1] != 'a' else 'e'}{first[2:]} {last}"  # one vowel differs
    variant = await create(profile, person(new_customer, full_name=sounds_alike,
                                           birth_date=date_pb2.Date(year=1991, month=6, day=17)))
    await caught_up(profile_service)  # the matcher keeps the name keys
    found = await find(profile, [made.name], customer=original.name)
    assert variant.name in [m.customer for m in found]
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        stored = (await connection.execute(sa.text("SELECT name_key FROM match_name_key WHERE customer_id = :c"),
                                           {"c": original.customer_id})).scalar()
    assert stored and len(stored) == 32 and first.lower().encode() not in stored  # a keyed hash, not the name


async def filed_candidate(profile, profile_service, new_customer) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A PENDING candidate pair, inserted as the matcher would have filed it."""
    a, b = await create(profile, person(new_customer)), await create(profile, person(new_customer))
    candidate_id = uuid.uuid4()
    _, runtime = profile_service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.text(
            "INSERT INTO match_candidate (match_candidate_id, customer_a, customer_b, match_rule_id, score, state)"
            " VALUES (:id, :a, :b, 'manual-test', 0.93, 1)"),
            {"id": candidate_id, "a": a.customer_id, "b": b.customer_id})
    return f"matchCandidates/{candidate_id}", b.name


async def test_a_repeated_dismiss_request_id_replays_the_first_answer(profile, profile_service, new_customer) -> None:
    (first, _), (second, second_customer) = [await filed_candidate(profile, profile_service, new_customer)
                                             for _ in range(2)]
    key = str(uuid.uuid4())
    dismissed = (await profile.DismissMatchCandidate(i.DismissMatchCandidateRequest(
        name=first, reason="siblings", request_id=key), metadata=ADMIN)).match_candidate
    assert dismissed.state == i.MATCH_CANDIDATE_STATE_DISMISSED
    # The same key with the same body is a retry: it answers with the first candidate.
    replayed = (await profile.DismissMatchCandidate(i.DismissMatchCandidateRequest(
        name=first, reason="siblings", request_id=key), metadata=ADMIN)).match_candidate
    assert replayed == dismissed
    # The same key with another body is refused (AIP-155) and dismisses nothing else.
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await profile.DismissMatchCandidate(i.DismissMatchCandidateRequest(
            name=second, reason="siblings", request_id=key), metadata=ADMIN)
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(reused.value)
    assert [c.name for c in await candidates(profile, customer=second_customer)] == [second]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.DismissMatchCandidate(i.DismissMatchCandidateRequest(name=second, request_id="not-a-uuid"),
                                            metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(error.value)
