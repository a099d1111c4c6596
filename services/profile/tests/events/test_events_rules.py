"""The pure event rules, without a database: one problem per bad event, named field and reason."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_profile.attributes.model import DataClass
from crm_profile.customers.model import ACTIVE, ERASED, MERGED
from crm_profile.events import rules
from crm_profile.events.model import Application, Event, EventFilter, Login, Problem, Transaction
from crm_profile.holdings.money import Money
from crm_profile.privacy.retention.model import RetentionAction, RetentionAnchor, RetentionPolicy
from crmkit.errors import InvalidArgument

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RETENTION = rules.Retention()
TX = Transaction(amount=Money("CNY", 88, 800_000_000), direction=2, kind=2, holding="customers/C1/holdings/CARD-1",
                 balance_after=Money("CNY", 1000), merchant_category_code="5812")


def event(**overrides: object) -> Event:
    values: dict[str, object] = dict(event_id="mobile-banking:42", customer="customers/C1", event_type=1, channel=2,
                                     occur_time=NOW - timedelta(minutes=1), source_system="mobile-banking")
    values.update(overrides)
    return Event(**values)  # type: ignore[arg-type]


def problem(e: Event) -> tuple[str, str] | None:
    found = rules.problem_of(e, now=NOW, retention=RETENTION)
    return (found.field, found.reason) if found is not None else None


@pytest.mark.parametrize("e", [
    event(),
    event(event_type=6, transaction=TX),
    event(event_type=7, channel=8, transaction=dataclasses.replace(TX, direction=1, kind=5)),
    event(event_type=4, product_code="CC-PLATINUM", application=Application("APP-1", 1)),
    event(event_type=2, login=Login(False, "face")),
    event(event_type=3, product_code="FUND.A-1", properties={"page": "fund-detail", "ab_group": "b"}),
    event(occur_time=NOW + timedelta(minutes=4)),
    event(event_type=6, transaction=TX, occur_time=NOW - timedelta(days=9 * 365)),  # transactions are kept longer
])
def test_valid_events_have_no_problem(e: Event) -> None:
    assert problem(e) is None


@pytest.mark.parametrize(("e", "expected"), [
    (event(event_id=""), ("event_id", "REQUIRED")),
    (event(event_id="x" * 129), ("event_id", "INVALID_FORMAT")),
    (event(event_id="caf\u00e9"), ("event_id", "INVALID_FORMAT")),
    (event(customer=""), ("customer", "REQUIRED")),
    (event(customer="customers/C1/holdings/H"), ("customer", "INVALID_FORMAT")),
    (event(event_type=0), ("event_type", "REQUIRED")),
    (event(event_type=42), ("event_type", "OUT_OF_RANGE")),
    (event(channel=0), ("channel", "REQUIRED")),
    (event(occur_time=None), ("occur_time", "REQUIRED")),
    (event(occur_time=NOW + timedelta(minutes=6)), ("occur_time", "OUT_OF_RANGE")),
    (event(occur_time=NOW - timedelta(days=4 * 365)), ("occur_time", "OUTSIDE_RETENTION")),
    (event(source_system=""), ("source_system", "REQUIRED")),
    (event(source_system="9lives"), ("source_system", "INVALID_FORMAT")),
    (event(branch_id="B" * 33), ("branch_id", "INVALID_FORMAT")),
    (event(event_type=3), ("product_code", "REQUIRED")),
    (event(product_code="no spaces"), ("product_code", "INVALID_FORMAT")),
    (event(event_type=6), ("transaction", "REQUIRED")),
    (event(event_type=2), ("login", "REQUIRED")),
    (event(event_type=4, product_code="CC"), ("application", "REQUIRED")),
    (event(transaction=TX), ("transaction", "DETAIL_MISMATCH")),
    (event(event_type=6, login=Login(True)), ("login", "DETAIL_MISMATCH")),
    (event(event_type=6, transaction=dataclasses.replace(TX, amount=None)), ("transaction.amount", "REQUIRED")),
    (event(event_type=6, transaction=dataclasses.replace(TX, amount=Money("CNY", 0))),
     ("transaction.amount", "OUT_OF_RANGE")),
    (event(event_type=6, transaction=dataclasses.replace(TX, amount=Money("YUAN", 5))),
     ("transaction.amount.currency_code", "INVALID_FORMAT")),
    (event(event_type=6, transaction=dataclasses.replace(TX, amount=Money("JPY", 5, 500_000_000))),
     ("transaction.amount", "INVALID_FORMAT")),
    (event(event_type=6, transaction=dataclasses.replace(TX, direction=0)), ("transaction.direction", "REQUIRED")),
    (event(event_type=7, transaction=TX), ("transaction.direction", "DETAIL_MISMATCH")),
    (event(event_type=6, transaction=dataclasses.replace(TX, kind=13)), ("transaction.kind", "OUT_OF_RANGE")),
    (event(event_type=6, transaction=dataclasses.replace(TX, holding="customers/C2/holdings/H1")),
     ("transaction.holding", "INVALID_FORMAT")),
    (event(event_type=6, transaction=dataclasses.replace(TX, balance_after=Money("USD", 1))),
     ("transaction.balance_after.currency_code", "DETAIL_MISMATCH")),
    (event(event_type=6, transaction=dataclasses.replace(TX, merchant_category_code="58")),
     ("transaction.merchant_category_code", "INVALID_FORMAT")),
    (event(event_type=5, product_code="LOAN", application=Application("", 1)),
     ("application.application_id", "REQUIRED")),
    (event(event_type=5, product_code="LOAN", application=Application("A1", 0)),
     ("application.outcome", "REQUIRED")),
    (event(event_type=2, login=Login(True, "m" * 33)), ("login.method", "INVALID_FORMAT")),
    (event(properties={f"k{i}": "v" for i in range(21)}), ("properties", "OUT_OF_RANGE")),
    (event(properties={"Page": "x"}), ("properties", "INVALID_FORMAT")),
    (event(properties={"page": "x" * 257}), ("properties", "INVALID_FORMAT")),
    (event(occur_time=None, unreadable=Problem("occur_time", "INVALID_FORMAT", "is not a valid timestamp")),
     ("occur_time", "INVALID_FORMAT")),
])
def test_each_rule_names_its_field_and_reason(e: Event, expected: tuple[str, str]) -> None:
    assert problem(e) == expected


def test_an_unknown_enum_number_is_named_as_unknown_not_missing() -> None:
    found = rules.problem_of(event(channel=42), now=NOW, retention=RETENTION)
    assert found is not None and (found.field, found.description) == ("channel", "42 is not a known EventChannel value")


def test_descriptions_never_quote_the_offending_value() -> None:
    found = rules.problem_of(event(source_system="SECRET-VALUE"), now=NOW, retention=RETENTION)
    assert found is not None and "SECRET-VALUE" not in found.description


def test_batch_sizes_outside_1_to_1000_fail_the_call() -> None:
    rules.check_batch_size(1)
    rules.check_batch_size(1000)
    for size in (0, 1001):
        with pytest.raises(InvalidArgument) as error:
            rules.check_batch_size(size)
        assert error.value.violations[0].field == "events"


def test_months_of_partitions_are_utc_calendar_months() -> None:
    assert rules.month_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == date(2026, 12, 1)
    first_morning_in_shanghai = datetime(2026, 11, 30, 20, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert first_morning_in_shanghai.day == 1
    assert rules.month_of(first_morning_in_shanghai) == date(2026, 11, 1)
    assert rules.next_month(date(2026, 12, 1)) == date(2027, 1, 1)
    assert rules.next_month(date(2026, 1, 1)) == date(2026, 2, 1)


def test_list_filter_allows_intervals_up_to_400_days() -> None:
    rules.validate_filter(EventFilter(occur_from=NOW - timedelta(days=400), occur_to=NOW))
    rules.validate_filter(EventFilter())
    for bad in (EventFilter(occur_from=NOW - timedelta(days=401), occur_to=NOW),
                EventFilter(occur_from=NOW), EventFilter(channels=(0,))):
        with pytest.raises(InvalidArgument):
            rules.validate_filter(bad)


def test_the_future_limit_is_the_configured_clock_skew() -> None:
    ahead = event(occur_time=NOW + timedelta(seconds=90))
    assert rules.problem_of(ahead, now=NOW, retention=RETENTION, max_skew=timedelta(minutes=2)) is None
    found = rules.problem_of(ahead, now=NOW, retention=RETENTION, max_skew=timedelta(minutes=1))
    assert found is not None and (found.field, found.reason) == ("occur_time", "OUT_OF_RANGE")
    assert "1 minute in the future" in found.description


def policy(data_class: DataClass, days: int, *, anchor: RetentionAnchor = RetentionAnchor.RECORD_TIME,
           minimum_days: int = 0) -> RetentionPolicy:
    return RetentionPolicy(data_class=data_class, retention=timedelta(days=days), anchor=anchor,
                           action=RetentionAction.DELETE, minimum=timedelta(days=minimum_days))


def test_retention_comes_from_the_policies_never_below_the_legal_floor() -> None:
    behaviour, transaction = DataClass.BEHAVIOUR, DataClass.TRANSACTION
    retention = rules.retention_of({behaviour: policy(behaviour, 30), transaction: policy(transaction, 3650)})
    assert (retention.behaviour, retention.transaction) == (timedelta(days=30), timedelta(days=3650))
    old_visit = event(occur_time=NOW - timedelta(days=31))
    found = rules.problem_of(old_visit, now=NOW, retention=retention)
    assert found is not None and (found.field, found.reason) == ("occur_time", "OUTSIDE_RETENTION")
    assert "30-day" in found.description
    # A floor raised after the policy was set wins, as it does in the purge.
    floored = rules.retention_of({behaviour: policy(behaviour, 30, minimum_days=60)})
    assert rules.problem_of(old_visit, now=NOW, retention=floored) is None
    # Counted from the end of the relationship, an event's age never makes it due.
    anchored = rules.retention_of({behaviour: policy(behaviour, 30, anchor=RetentionAnchor.RELATIONSHIP_END)})
    assert anchored.behaviour is None
    assert rules.problem_of(event(occur_time=NOW - timedelta(days=20 * 365)), now=NOW, retention=anchored) is None
    # A class without a stored policy keeps the default.
    assert rules.retention_of({}) == rules.Retention()


def test_the_ingest_quota_limits_events_and_bytes_per_message() -> None:
    limits = rules.IngestLimits(max_batch_events=10, max_message_bytes=5_000)
    rules.check_batch_size(10, limits)
    rules.check_message_size(5_000, limits)
    with pytest.raises(InvalidArgument) as too_many:
        rules.check_batch_size(11, limits)
    assert (too_many.value.violations[0].field, too_many.value.violations[0].description) == (
        "events", "must hold 1 to 10 events per batch")
    with pytest.raises(InvalidArgument) as too_big:
        rules.check_message_size(5_001, limits)
    assert too_big.value.violations[0].field == "events" and "5000 bytes" in too_big.value.violations[0].description


@pytest.mark.parametrize("limits", [dict(max_batch_events=0), dict(max_batch_events=1001), dict(max_message_bytes=0),
                                    dict(max_clock_skew=timedelta(seconds=-1))])
def test_limits_outside_the_contract_are_refused_at_start_up(limits: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        rules.IngestLimits(**limits)  # type: ignore[arg-type]


def test_events_are_filed_under_the_end_of_their_merge_chain_unless_erased() -> None:
    assert rules.filing_problem(("C2", ACTIVE)) is None
    assert rules.filing_problem(("C2", ERASED)) == rules.CUSTOMER_ERASED
    assert rules.filing_problem(None) == rules.CUSTOMER_NOT_FOUND
    assert rules.filing_problem(("C2", MERGED)) == rules.CUSTOMER_NOT_FOUND  # a chain too long to follow
