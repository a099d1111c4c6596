"""Pure identity-resolution rules, without a database: rule validation, similarity, blocking
keys, survivorship and unmerge restoration."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from crm_profile.customers.model import Customer, ExternalId
from crm_profile.identity import rules
from crm_profile.identity.model import (
    ADDRESS,
    AUTO_MERGE,
    BIRTH_DATE,
    DATE_TYPO,
    EARLIEST,
    EXACT,
    FIXED_RULE,
    FULL_NAME,
    JARO_WINKLER,
    KEY_MOBILE_PHONE,
    MOST_COMPLETE,
    MOST_RECENT,
    MOST_RECENTLY_CONFIRMED,
    MOST_TRUSTED_SOURCE,
    SOURCE,
    SUGGEST,
    SURVIVOR,
    TOKEN_SET,
    FuzzyComparison,
    FuzzyCriteria,
    IdDocumentKey,
    Identifier,
    MatchRule,
    SurvivorshipRule,
)
from crmkit.errors import InvalidArgument
from crmkit.validation import Violations

EARLY = datetime(2025, 1, 1, tzinfo=UTC)
LATE = datetime(2026, 1, 1, tzinfo=UTC)


def fields_of(violations: Violations) -> set[str]:
    return set(problems_of(violations))


def problems_of(violations: Violations) -> dict[str, str]:
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return {v.field: v.description for v in error.violations}
    return {}


def fuzzy_rule(**overrides: object) -> MatchRule:
    values: dict[str, object] = {
        "match_rule_id": "fuzzy-name-dob", "display_name": "Name and birth date", "priority": 10,
        "fuzzy": FuzzyCriteria((FuzzyComparison(FULL_NAME, JARO_WINKLER, 2), FuzzyComparison(BIRTH_DATE, DATE_TYPO, 1)),
                               review_threshold=0.8),
        "action": SUGGEST,
    }
    values.update(overrides)
    return MatchRule(**values)  # type: ignore[arg-type]


def test_valid_rules_pass() -> None:
    assert fields_of(rules.validate_rule(fuzzy_rule())) == set()
    exact = MatchRule("exact-phone", "Phone", priority=1, exact_key=KEY_MOBILE_PHONE, action=AUTO_MERGE,
                      survivorship_rules=(SurvivorshipRule("email", SOURCE),))
    assert fields_of(rules.validate_rule(exact)) == set()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"match_rule_id": "Bad_Id"}, "match_rule.match_rule_id"),
    ({"display_name": " "}, "match_rule.display_name"),
    ({"priority": 0}, "match_rule.priority"),
    ({"action": 0}, "match_rule.action"),
    ({"fuzzy": None}, "match_rule.criteria"),
    ({"fuzzy": None, "exact_key": 9}, "match_rule.exact.key"),
    ({"fuzzy": FuzzyCriteria((FuzzyComparison(BIRTH_DATE, JARO_WINKLER, 1),), 0.5)},
     "match_rule.fuzzy.comparisons[0].method"),
    ({"fuzzy": FuzzyCriteria((FuzzyComparison(ADDRESS, TOKEN_SET, 1), FuzzyComparison(ADDRESS, EXACT, 1)), 0.5)},
     "match_rule.fuzzy.comparisons[1].field"),
    ({"fuzzy": FuzzyCriteria((), 0.5)}, "match_rule.fuzzy.comparisons"),
    ({"fuzzy": FuzzyCriteria((FuzzyComparison(FULL_NAME, EXACT, 0),), 0.5)}, "match_rule.fuzzy.comparisons[0].weight"),
    ({"fuzzy": FuzzyCriteria((FuzzyComparison(FULL_NAME, EXACT, 1),), 0)}, "match_rule.fuzzy.review_threshold"),
    ({"action": AUTO_MERGE}, "match_rule.fuzzy.auto_merge_threshold"),
    ({"action": AUTO_MERGE, "fuzzy": FuzzyCriteria((FuzzyComparison(FULL_NAME, EXACT, 1),), 0.9, 0.8)},
     "match_rule.fuzzy.auto_merge_threshold"),
    ({"survivorship_rules": (SurvivorshipRule("email", SOURCE),)}, "match_rule.survivorship_rules"),
])
def test_bad_rules_name_the_field(overrides: dict[str, object], field: str) -> None:
    assert field in fields_of(rules.validate_rule(fuzzy_rule(**overrides)))


@pytest.mark.parametrize(("overrides", "field", "enum_name"), [
    ({"action": 9}, "match_rule.action", "MatchAction"),
    ({"fuzzy": None, "exact_key": 9}, "match_rule.exact.key", "MatchKey"),
    ({"fuzzy": FuzzyCriteria((FuzzyComparison(9, EXACT, 1),), 0.5)}, "match_rule.fuzzy.comparisons[0].field",
     "FuzzyField"),
    ({"action": AUTO_MERGE, "fuzzy": None, "exact_key": KEY_MOBILE_PHONE,
      "survivorship_rules": (SurvivorshipRule("email", 9),)}, "match_rule.survivorship_rules[0].strategy",
     "SurvivorshipStrategy"),
])
def test_an_unknown_enum_number_is_named_as_unknown_not_missing(overrides: dict[str, object], field: str,
                                                               enum_name: str) -> None:
    assert problems_of(rules.validate_rule(fuzzy_rule(**overrides)))[field] == f"9 is not a known {enum_name} value"


def test_an_unset_enum_is_still_required() -> None:
    assert problems_of(rules.validate_rule(fuzzy_rule(action=0)))["match_rule.action"].startswith("is required")
    found = problems_of(rules.validate_survivorship([SurvivorshipRule("email", 0)]))
    assert found["survivorship_rules[0].strategy"].startswith("is required")


def test_survivorship_rules_are_checked() -> None:
    bad = [SurvivorshipRule("risk_tolerance", SOURCE), SurvivorshipRule("shoe_size", SOURCE),
           SurvivorshipRule("email", 0), SurvivorshipRule("address", MOST_TRUSTED_SOURCE),
           SurvivorshipRule("address", SURVIVOR)]
    assert fields_of(rules.validate_survivorship(bad)) == {
        "survivorship_rules[0].field", "survivorship_rules[1].field", "survivorship_rules[2].strategy",
        "survivorship_rules[3].source_priority", "survivorship_rules[4].field"}


def test_merging_a_customer_into_itself_has_its_own_reason() -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.validate_merge_request(survivor_id="A", source_id="A", rules=(), default_strategy=0)
    assert error.value.reason == "MERGE_INTO_SELF"
    assert [v.field for v in error.value.violations] == ["source_customer"]
    with pytest.raises(InvalidArgument) as error:
        rules.validate_merge_request(survivor_id="A", source_id="B", rules=(),
                                     default_strategy=MOST_TRUSTED_SOURCE)
    assert [v.field for v in error.value.violations] == ["default_strategy"]


def test_similarity_measures() -> None:
    assert rules.jaro_winkler("martha", "marhta") == pytest.approx(0.961, abs=1e-3)
    assert rules.jaro_winkler("dixon", "dicksonx") == pytest.approx(0.813, abs=1e-3)
    assert rules.levenshtein("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert rules.token_set("1 chang an ave", "chang an ave 1 beijing") == pytest.approx(4 / 5)
    assert rules.date_typo(date(1985, 3, 14), date(1985, 3, 14)) == 1.0
    assert rules.date_typo(date(1985, 3, 4), date(1985, 4, 3)) == 0.8  # day and month swapped
    assert rules.date_typo(date(1985, 3, 14), date(1986, 3, 14)) == 0.8  # one digit
    assert rules.date_typo(date(1985, 3, 14), date(1990, 7, 1)) == 0.0


def test_names_and_addresses_are_normalised() -> None:
    assert rules.normalise_name("  LI   Wei ") == rules.normalise_name("wei li") == "li wei"
    assert rules.normalise_name("\uff2c\uff49 \uff37\uff45\uff49") == "li wei"  # full-width
    assert rules.normalise_name("José Müller") == "jose muller"
    assert rules.normalise_name("李伟") == "伟 李"  # CJK characters are tokens of their own
    assert rules.normalise_address({"addressLines": ["1 Chang'an Avenue, Floor 3"], "locality": "Beijing"}) == \
        "1 chang an ave fl 3 beijing"


def test_the_name_key_groups_names_that_sound_alike() -> None:
    assert rules.name_key("Jon Smith") == rules.name_key("john smyth") == rules.name_key("Smith, John")
    assert rules.name_key("Li Wei") != rules.name_key("Lu Wang")
    assert rules.soundex("robert") == rules.soundex("rupert") == "r163"


def test_a_fuzzy_score_is_weighted_and_a_floor_rejects() -> None:
    criteria = FuzzyCriteria((FuzzyComparison(FULL_NAME, JARO_WINKLER, 3, min_similarity=0.7),
                              FuzzyComparison(BIRTH_DATE, DATE_TYPO, 1)), review_threshold=0.8)
    a = rules.Comparable("li wei", date(1985, 3, 14), "")
    scored = rules.score(criteria, a, rules.Comparable("li wei", date(1985, 3, 14), ""))
    assert scored is not None and scored[0] == 1.0 and [s.field for s in scored[1]] == [FULL_NAME, BIRTH_DATE]
    typo = rules.score(criteria, a, rules.Comparable("li wei", date(1985, 3, 15), ""))
    assert typo is not None and typo[0] == pytest.approx((3 + 0.8) / 4)
    assert rules.score(criteria, a, rules.Comparable("zhang san", date(1985, 3, 14), "")) is None


def customer(cid: str, **values: object) -> Customer:
    defaults: dict[str, object] = {"customer_type": 1, "full_name": "Li Wei", "updated_at": EARLY}
    defaults.update(values)
    return Customer(customer_id=cid, **defaults)  # type: ignore[arg-type]


def test_a_set_value_beats_an_empty_one_and_strategies_decide_the_rest() -> None:
    survivor = customer("S", email="", mobile_phone="+8613800000001", occupation="teacher", updated_at=EARLY)
    source = customer("M", email="m@example.com", mobile_phone="+8613800000002", occupation="engineer",
                      updated_at=LATE)
    survival = rules.survive(survivor, source, [SurvivorshipRule("occupation", SURVIVOR)], default_strategy=0)
    merged = survival.customer
    assert merged.email == "m@example.com"  # set beats empty
    assert merged.mobile_phone == "+8613800000002"  # its default, the source changed (and so confirmed) later
    assert merged.occupation == "teacher"  # SURVIVOR
    lineage = {x.field: x for x in survival.lineage}
    assert lineage["email"].chosen_from == "M" and lineage["occupation"].chosen_from == "S"
    assert lineage["mobile_phone"].strategy == MOST_RECENTLY_CONFIRMED and lineage["mobile_phone"].value_time == LATE
    assert "full_name" not in lineage  # equal values have no lineage


MIDDLE = datetime(2025, 7, 1, tzinfo=UTC)
VERIFIED, PENDING, EXPIRED, REJECTED = 2, 1, 3, 4


def test_every_mergeable_field_has_a_default_that_suits_it() -> None:
    assert set(rules.SURVIVORSHIP_DEFAULTS) == set(rules.MERGE_FIELDS)
    assert rules.RISK_TOLERANCE not in rules.SURVIVORSHIP_DEFAULTS  # a fixed rule, not a default
    for field, default in rules.SURVIVORSHIP_DEFAULTS.items():
        assert field in rules.STRATEGY_FIELDS.get(default.strategy, {field})
    assert not rules.validate_survivorship([SurvivorshipRule(f, d.strategy)
                                            for f, d in rules.SURVIVORSHIP_DEFAULTS.items()])


@pytest.mark.parametrize("survivor_first", [True, False])
def test_the_earliest_onboarding_survives_whichever_record_changed_last(survivor_first: bool) -> None:
    first, then = date(2019, 3, 1), date(2023, 6, 1)
    survivor = customer("S", onboarded_on=first if survivor_first else then, updated_at=EARLY)
    source = customer("M", onboarded_on=then if survivor_first else first, updated_at=LATE)
    survival = rules.survive(survivor, source, [], default_strategy=0)
    assert survival.customer.onboarded_on == first
    lineage = {x.field: x for x in survival.lineage}["onboarded_on"]
    assert lineage.strategy == EARLIEST and lineage.chosen_from == ("S" if survivor_first else "M")


def test_contact_data_comes_from_the_most_recently_confirmed_record() -> None:
    survivor = customer("S", mobile_phone="+8613800000001", email="s@example.com", updated_at=EARLY)
    source = customer("M", mobile_phone="+8613800000002", email="m@example.com", updated_at=MIDDLE)
    # The survivor's phone was set long ago but confirmed by the customer last week; its e-mail was not.
    provenance = {"S": {"mobile_phone": rules.ValueOrigin(EARLY, LATE, "branch-counter"),
                        "email": rules.ValueOrigin(EARLY, EARLY, "branch-counter")},
                  "M": {"mobile_phone": rules.ValueOrigin(MIDDLE, MIDDLE, "crm"),
                        "email": rules.ValueOrigin(MIDDLE, MIDDLE, "crm")}}
    survival = rules.survive(survivor, source, [], default_strategy=0, provenance=provenance)
    assert survival.customer.mobile_phone == "+8613800000001" and survival.customer.email == "m@example.com"
    lineage = {x.field: x for x in survival.lineage}
    assert lineage["mobile_phone"].value_time == LATE and lineage["mobile_phone"].source_system == "branch-counter"
    assert lineage["email"].strategy == MOST_RECENTLY_CONFIRMED


@pytest.mark.parametrize(("survivor_kyc", "source_kyc", "kept"), [
    (VERIFIED, PENDING, VERIFIED),  # the newer record only collected documents: the finished check stands
    (PENDING, VERIFIED, VERIFIED),
    (VERIFIED, EXPIRED, EXPIRED),  # two finished checks: the later outcome
    (REJECTED, VERIFIED, VERIFIED),
    (VERIFIED, REJECTED, REJECTED),
    (0, PENDING, PENDING),  # a set value beats an empty one
])
def test_kyc_keeps_the_most_complete_then_the_most_recent_check(survivor_kyc: int, source_kyc: int,
                                                                kept: int) -> None:
    survivor = customer("S", kyc_status=survivor_kyc, updated_at=EARLY)
    source = customer("M", kyc_status=source_kyc, updated_at=LATE)
    survival = rules.survive(survivor, source, [], default_strategy=0)
    assert survival.customer.kyc_status == kept
    assert {x.field: x.strategy for x in survival.lineage}["kyc_status"] == MOST_COMPLETE


def test_callers_rules_override_the_defaults_where_the_contract_allows() -> None:
    survivor = customer("S", onboarded_on=date(2019, 3, 1), kyc_status=VERIFIED, mobile_phone="+8613800000001",
                        updated_at=EARLY)
    source = customer("M", onboarded_on=date(2023, 6, 1), kyc_status=PENDING, mobile_phone="+8613800000002",
                      updated_at=LATE)
    # A default strategy replaces the recency defaults, not the rules that follow from a field's meaning ...
    by_default = rules.survive(survivor, source, [], default_strategy=SOURCE).customer
    assert (by_default.mobile_phone, by_default.onboarded_on, by_default.kyc_status) == (
        "+8613800000002", date(2019, 3, 1), VERIFIED)
    # ... a rule naming the field replaces any default.
    named = rules.survive(survivor, source, [SurvivorshipRule("onboarded_on", SOURCE),
                                             SurvivorshipRule("kyc_status", MOST_RECENT)], default_strategy=0).customer
    assert (named.onboarded_on, named.kyc_status) == (date(2023, 6, 1), PENDING)


def test_field_specific_strategies_only_suit_their_fields() -> None:
    bad = [SurvivorshipRule("email", EARLIEST), SurvivorshipRule("onboarded_on", MOST_COMPLETE),
           SurvivorshipRule("kyc_status", 8)]
    found = rules.validate_survivorship(bad)
    assert fields_of(found) == {f"survivorship_rules[{n}].strategy" for n in range(3)}
    for strategy in (EARLIEST, MOST_COMPLETE, MOST_TRUSTED_SOURCE):
        with pytest.raises(InvalidArgument) as error:
            rules.validate_merge_request(survivor_id="A", source_id="B", rules=(), default_strategy=strategy)
        assert [v.field for v in error.value.violations] == ["default_strategy"]


def test_the_more_conservative_risk_tolerance_always_wins() -> None:
    survival = rules.survive(customer("S", risk_tolerance=4), customer("M", risk_tolerance=2), [],
                             default_strategy=SOURCE)
    assert survival.customer.risk_tolerance == 2 and survival.risk_tolerance_conflict
    assert {x.field: x.strategy for x in survival.lineage}["risk_tolerance"] == FIXED_RULE
    unassessed = rules.survive(customer("S", risk_tolerance=0), customer("M", risk_tolerance=3), [],
                               default_strategy=SURVIVOR)
    assert unassessed.customer.risk_tolerance == 3 and not unassessed.risk_tolerance_conflict


def test_most_trusted_source_uses_the_value_provenance() -> None:
    rule = SurvivorshipRule("address", MOST_TRUSTED_SOURCE, ("core-banking", "branch-counter"))
    survivor = customer("S", address={"regionCode": "CN", "locality": "Beijing"})
    source = customer("M", address={"regionCode": "CN", "locality": "Shanghai"})
    provenance = {"S": {"address": rules.ValueOrigin(LATE, None, "legacy-cif")},
                  "M": {"address": rules.ValueOrigin(EARLY, None, "core-banking")}}
    survival = rules.survive(survivor, source, [rule], default_strategy=0, provenance=provenance)
    assert survival.customer.address["locality"] == "Shanghai"
    assert {x.field: x.source_system for x in survival.lineage}["address"] == "core-banking"


def test_unmerge_restores_what_the_merge_changed_unless_changed_since() -> None:
    before = customer("S", email="", mobile_phone="+8613800000001", risk_tolerance=4)
    after = customer("S", email="m@example.com", mobile_phone="+8613800000002", risk_tolerance=2)
    untouched = rules.restore_survivor(after, before=before, after=after)
    assert (untouched.email, untouched.mobile_phone, untouched.risk_tolerance) == ("", "+8613800000001", 4)
    edited_since = customer("S", email="m@example.com", mobile_phone="+8613899999999", risk_tolerance=2)
    kept = rules.restore_survivor(edited_since, before=before, after=after)
    assert kept.mobile_phone == "+8613899999999" and kept.email == ""


def test_older_customer_first() -> None:
    old = customer("Z", onboarded_on=date(2001, 1, 1))
    new = customer("A", onboarded_on=date(2020, 1, 1))
    assert rules.older_first(new, old) == (old, new)


def test_identifiers_are_validated_and_made_canonical() -> None:
    canonical = rules.validate_identifier(Identifier(email=" Li.Wei@Example.COM "))
    assert canonical.email == "li.wei@example.com"
    doc = rules.validate_identifier(Identifier(id_document=IdDocumentKey(1, " 11010519491231002x ", "CN")))
    assert doc.id_document is not None and doc.id_document.number == "11010519491231002X"
    for bad, field in [(Identifier(), "identifier"), (Identifier(mobile_phone="138"), "mobile_phone"),
                       (Identifier(id_document=IdDocumentKey(2, "E1234567", "")), "id_document.issuing_country"),
                       (Identifier(id_document=IdDocumentKey(0, "E1234567", "")), "id_document.type"),
                       (Identifier(external_id=ExternalId("Core Banking", "1")), "external_id.source_system")]:
        with pytest.raises(InvalidArgument) as error:
            rules.validate_identifier(bad)
        assert field in {v.field for v in error.value.violations}
