"""The synthetic bank: deterministic, shaped as documented, and loaded by `crm demo load` into a
real profile process, where loading it again changes nothing."""

from __future__ import annotations

import json
import statistics
import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest

from crm.common.v1 import audit_pb2
from crm.profile.v1 import holding_pb2, identity_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_cli import demo_data, synthetic_bank, tokens
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _bank(count: int, seed: int = 7) -> list[synthetic_bank.BankCustomer]:
    return list(synthetic_bank.generate(count, seed=seed, now=NOW))


def _fingerprint(bank: list[synthetic_bank.BankCustomer]) -> list[bytes]:
    return [m.SerializeToString(deterministic=True) for who in bank
            for m in (who.customer, *who.holdings, *who.events, *who.consents, *who.complaints,
                      *(answer for _, answer in who.survey_answers), *who.duplicates)]


def test_the_same_seed_and_day_give_the_same_bank_and_another_seed_another() -> None:
    assert _fingerprint(_bank(40)) == _fingerprint(_bank(40))
    assert _fingerprint(_bank(40)) != _fingerprint(_bank(40, seed=8))


def test_a_bank_with_its_duplicates_and_answers_is_the_start_of_any_larger_one_of_its_seed() -> None:
    assert _fingerprint(_bank(60)) == _fingerprint(_bank(150)[:60])


def test_a_few_customers_are_registered_again_on_mobile_under_ids_of_their_own() -> None:
    bank = _bank(300)
    twins = [(who.customer, twin) for who in bank for twin in who.duplicates]
    assert 10 <= len(twins) <= 20
    own = {c.customer_id for c in demo_data.customers(1000, seed=7)}
    assert own.isdisjoint(twin.customer_id for _, twin in twins)
    assert len({twin.customer_id for _, twin in twins}) == len(twins)
    for original, twin in twins:
        assert twin.full_name == original.full_name
        assert twin.external_ids[0].source_system == demo_data.MOBILE_SOURCE
        assert not twin.relationship_manager_id
    # The three variations: the same ID number; the same phone only; neither (name and a slipped birth date).
    assert any(t.id_document.number == o.id_document.number != "" for o, t in twins)
    assert any(not t.HasField("id_document") and t.mobile_phone == o.mobile_phone for o, t in twins)
    assert any(not t.HasField("id_document") and t.mobile_phone != o.mobile_phone and t.birth_date != o.birth_date
               for o, t in twins)


def test_duplicates_pass_the_profile_services_validation() -> None:
    messages = pytest.importorskip("crm_profile.api.customer_messages")
    rules = pytest.importorskip("crm_profile.customers.rules")
    for who in _bank(200):
        for twin in who.duplicates:
            rules.validate(rules.normalise(messages.to_domain(twin)), today=date.today()).raise_if_any()


def test_survey_answers_are_about_the_customers_own_touchpoints_and_leavers_score_lower() -> None:
    bank = _bank(1000)
    answered = [(who, survey_id, answer) for who in bank for survey_id, answer in who.survey_answers]
    assert 150 < len(answered) < 700
    surveys = {s.survey_id: s for s in synthetic_bank.surveys()}
    for who, survey_id, answer in answered:
        assert answer.customer == who.name and answer.channel in surveys[survey_id].channels
        event_ids = {e.event_id for e in who.events}
        assert answer.subject.removeprefix("events/") in event_ids
    touchpoints = {surveys[survey_id].touchpoint for _, survey_id, _ in answered}
    assert touchpoints == {"branch_visit", "mobile_transfer"}

    def nps(leaving: bool) -> float:
        return statistics.mean(a.answers[0].score for who, survey_id, a in answered
                               if survey_id == synthetic_bank.BRANCH_SURVEY and who.leaving == leaving)

    assert nps(True) < 4 < 7 < nps(False)


def test_value_is_concentrated_in_the_top_fifth() -> None:
    assets = sorted((who.assets for who in _bank(1000)), reverse=True)
    share = sum(assets[:200]) / sum(assets)
    assert 0.6 < share < 0.9, share


def test_leavers_fade_in_the_last_ninety_days_and_close_products() -> None:
    bank = _bank(1000)
    recent = NOW - timedelta(days=synthetic_bank.CHURN_FADE_DAYS // 2)

    def recent_activity(who: synthetic_bank.BankCustomer) -> int:
        return sum(event.occur_time.ToDatetime(tzinfo=UTC) >= recent for event in who.events)

    leavers = [who for who in bank if who.leaving]
    stayers = [who for who in bank if not who.leaving]
    assert 0.08 < len(leavers) / len(bank) < 0.22
    assert statistics.mean(map(recent_activity, leavers)) < 0.5 * statistics.mean(map(recent_activity, stayers))
    closed = sum(h.status == holding_pb2.HOLDING_STATUS_CLOSED for who in leavers for h in who.holdings)
    assert closed > 0
    assert not any(h.status == holding_pb2.HOLDING_STATUS_CLOSED for who in stayers for h in who.holdings)


def test_leavers_complain_more_often() -> None:
    bank = _bank(1000)
    leavers = [who for who in bank if who.leaving]
    stayers = [who for who in bank if not who.leaving]
    assert sum(bool(who.complaints) for who in leavers) / len(leavers) > 2 * (
        sum(bool(who.complaints) for who in stayers) / len(stayers))
    assert all(c.customer == who.name and c.description and c.category for who in bank for c in who.complaints)


def test_every_date_is_consistent() -> None:
    for who in _bank(300):
        assert all(e.occur_time.ToDatetime(tzinfo=UTC) <= NOW for e in who.events)
        for h in who.holdings:
            opened = (h.open_date.year, h.open_date.month, h.open_date.day)
            assert opened <= (NOW.year, NOW.month, NOW.day)
            if h.HasField("close_date"):
                assert (h.close_date.year, h.close_date.month, h.close_date.day) >= opened
            if h.HasField("maturity_date"):
                assert (h.maturity_date.year, h.maturity_date.month, h.maturity_date.day) >= opened


def test_crm_demo_load_loads_the_bank_through_profile_and_a_second_load_changes_nothing(crm) -> None:
    # Seed 37 is this test's own: the segments test loads seed 11 into the same session's profile.
    first = crm("demo", "load", "--customers", "25", "--seed", "37", "--output", "json")
    assert first.exit_code == 0, first.output
    loaded = json.loads(first.stdout)
    assert loaded["failures"] == []
    assert loaded["customers_created"] == 25 and loaded["customers_existing"] == 0  # seed 37's own ids
    assert loaded["holdings_loaded"] > 25 and loaded["consents_loaded"] > 0
    assert loaded["events_accepted"] > 0 and loaded["events_rejected"] == 0

    again = crm("demo", "load", "--customers", "25", "--seed", "37", "--output", "json")
    assert again.exit_code == 0, again.output
    repeated = json.loads(again.stdout)
    assert repeated["customers_existing"] == 25 and repeated["customers_created"] == 0
    # Holdings and consents replay their first answer (same request ids): loaded, nothing new.
    assert (repeated["holdings_loaded"], repeated["consents_loaded"]) == (loaded["holdings_loaded"],
                                                                          loaded["consents_loaded"])
    assert repeated["events_accepted"] == 0 and repeated["events_duplicate"] == loaded["events_accepted"]
    twins = sum(len(who.duplicates) for who in synthetic_bank.generate(25, seed=37))
    assert twins >= 1
    assert loaded["duplicates_created"] + loaded["duplicates_existing"] == twins
    assert (repeated["duplicates_created"], repeated["duplicates_existing"]) == (0, twins)


def test_crm_demo_load_refuses_a_bad_size(crm) -> None:
    result = crm("demo", "load", "--customers", "0")
    assert result.exit_code == 2 and "--customers" in result.output


def test_crm_demo_load_files_complaints_and_survey_answers_and_a_second_load_files_none(crm_feedback) -> None:
    bank = list(synthetic_bank.generate(40, seed=29))
    assert sum(len(who.complaints) for who in bank) > 0 and sum(len(who.survey_answers) for who in bank) > 0
    first = crm_feedback("demo", "load", "--customers", "40", "--seed", "29", "--complaints", "--output", "json")
    assert first.exit_code == 0, first.output
    loaded = json.loads(first.stdout)
    assert loaded["failures"] == []
    filed = loaded["complaints_filed"] + loaded["complaints_existing"]  # the feedback-down test may run first
    assert filed == sum(len(who.complaints) for who in bank)
    answered = loaded["survey_answers_filed"] + loaded["survey_answers_existing"]
    assert answered == sum(len(who.survey_answers) for who in bank) and loaded["surveys"] == 2
    again = json.loads(crm_feedback("demo", "load", "--customers", "40", "--seed", "29", "--feedback",
                                    "--output", "json").stdout)
    assert again["failures"] == [] and again["complaints_filed"] == 0 and again["complaints_existing"] == filed
    assert again["survey_answers_filed"] == 0 and again["survey_answers_existing"] == answered


def test_crm_demo_load_with_feedback_down_exits_1(crm) -> None:
    down = crm("demo", "load", "--customers", "40", "--seed", "29", "--complaints", "--feedback-target",
               "127.0.0.1:9", "--output", "json")
    assert down.exit_code == 1 and "UNAVAILABLE" in down.stdout


def test_identity_resolution_finds_the_mobile_duplicates_by_id_number_and_phone(crm, profile_port: int) -> None:
    loaded = crm("demo", "load", "--customers", "60", "--seed", "43", "--output", "json")
    assert loaded.exit_code == 0, loaded.output
    counts = json.loads(loaded.stdout)
    assert counts["duplicates_created"] + counts["duplicates_existing"] == 3
    twins = {twin.customer_id: (who.customer.customer_id, twin) for who in synthetic_bank.generate(60, seed=43)
             for twin in who.duplicates}
    token = tokens.mint(secret=TEST_JWT_SECRET, role=Role.ADMIN, subject="test-identity", hours=1)
    metadata = (("authorization", f"Bearer {token}"),)
    tag = uuid.uuid4().hex[:8]
    audit = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="test")
    with grpc.insecure_channel(f"127.0.0.1:{profile_port}") as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        rules = []
        for key in (identity_pb2.MATCH_KEY_ID_DOCUMENT, identity_pb2.MATCH_KEY_MOBILE_PHONE):
            rule = identity_pb2.MatchRule(match_rule_id=f"demo-{key}-{tag}", display_name=f"Exact {key}",
                                          priority=key, exact=identity_pb2.ExactMatchCriteria(key=key),
                                          action=identity_pb2.MATCH_ACTION_SUGGEST)
            rules.append(stub.CreateMatchRule(identity_pb2.CreateMatchRuleRequest(
                match_rule=rule, request_id=str(uuid.uuid4())), metadata=metadata, timeout=10).match_rule.name)
        found = {}
        for twin_id in twins:
            reply = stub.FindMatches(identity_pb2.FindMatchesRequest(
                customer=f"customers/{twin_id}", match_rules=rules, audit=audit), metadata=metadata, timeout=10)
            found[twin_id] = {m.customer.removeprefix("customers/") for m in reply.matches}
    # The phone (M0020) and ID-number (M0060) variations are found by exact rules; the third,
    # another phone and a slipped birth date, is left for a fuzzy rule.
    assert {t: twins[t][0] in found[t] for t in twins} == {
        "DEMO43-M0020": True, "DEMO43-M0040": False, "DEMO43-M0060": True}, found


def _stored(port: int, customer_ids: list[str]) -> dict[str, tuple[bytes, list[bytes]]]:
    """Each customer as profile holds it, with its holdings, bookkeeping (times, etags) left out."""
    token = tokens.mint(secret=TEST_JWT_SECRET, role=Role.ADMIN, subject="test-bulk", hours=1)
    metadata = (("authorization", f"Bearer {token}"),)
    audit = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="test")
    stored = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        for customer_id in customer_ids:
            customer = stub.GetCustomer(profile_service_pb2.GetCustomerRequest(
                name=f"customers/{customer_id}", audit=audit), metadata=metadata, timeout=10).customer
            for bookkeeping in ("etag", "create_time", "update_time"):
                customer.ClearField(bookkeeping)
            holdings = stub.ListHoldings(holding_pb2.ListHoldingsRequest(
                parent=customer.name, page_size=100, audit=audit), metadata=metadata, timeout=10).holdings
            for held in holdings:
                for bookkeeping in ("etag", "create_time", "update_time", "balance_time", "reporting_balance"):
                    held.ClearField(bookkeeping)
            stored[customer_id] = (customer.SerializeToString(deterministic=True),
                                   sorted(h.SerializeToString(deterministic=True) for h in holdings))
    return stored


def test_the_bulk_path_loads_the_same_bank_as_the_per_call_path_and_a_second_bulk_load_changes_nothing(
        crm, profile_port: int, second_profile_port: int) -> None:
    # Seed 53 is this test's own; the per-call path loads it into one profile, the bulk path into another.
    args = ("demo", "load", "--customers", "45", "--seed", "53", "--output", "json")
    per_call = crm(*args, "--method", "per-call")
    assert per_call.exit_code == 0, per_call.output
    bulk = crm(*args, "--method", "bulk", "--target", f"127.0.0.1:{second_profile_port}")
    assert bulk.exit_code == 0, bulk.output
    one, other = json.loads(per_call.stdout), json.loads(bulk.stdout)
    assert other["failures"] == [] and one["failures"] == []
    kept = ("customers_created", "duplicates_created", "holdings_loaded", "consents_loaded", "events_accepted")
    assert {k: other[k] for k in kept} == {k: one[k] for k in kept}
    assert other["customers_created"] == 45 and other["duplicates_created"] == 2
    assert list(other["phases"]) == ["files", "customers", "duplicates", "events", "external ids", "holdings",
                                     "consent calls"]
    assert other["phases"]["external ids"]["count"] == 47 and other["phases"]["holdings"]["count"] == \
        other["holdings_loaded"]
    bank = list(synthetic_bank.generate(45, seed=53))
    ids = [who.customer.customer_id for who in bank] + [twin.customer_id for who in bank for twin in who.duplicates]
    # Every field, the external ids (set apart from the import) and every holding, the same.
    assert _stored(second_profile_port, ids) == _stored(profile_port, ids)

    again = crm(*args, "--method", "bulk", "--target", f"127.0.0.1:{second_profile_port}")
    assert again.exit_code == 0, again.output
    repeated = json.loads(again.stdout)
    assert repeated["failures"] == []
    assert (repeated["customers_created"], repeated["customers_existing"]) == (0, 45)
    assert (repeated["duplicates_created"], repeated["duplicates_existing"]) == (0, 2)
    assert repeated["phases"]["external ids"]["count"] == 0  # none lacking: no UpdateCustomer
    assert repeated["events_accepted"] == 0 and repeated["events_duplicate"] == other["events_accepted"]
