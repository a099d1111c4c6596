"""The pure holding rules and money arithmetic, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crm_profile.customers import rules as customer_rules
from crm_profile.holdings import money, rules
from crm_profile.holdings.model import CustomerRef, Holding, OpenState
from crm_profile.holdings.money import Money
from crmkit.auth import Principal, Role
from crmkit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def holding(**overrides: object) -> Holding:
    values: dict[str, object] = dict(
        customer_id="C1", holding_id="H1", product_code="TD-3Y-CNY", product_type=3, currency="CNY",
        balance=Money("CNY", 100, 500_000_000), open_date=date(2024, 1, 5), status=1, source_system="core-banking",
        maturity_date=date(2027, 1, 5))
    values.update(overrides)
    return Holding(**values)  # type: ignore[arg-type]


def fields(h: Holding) -> set[str]:
    violations = rules.validate(h, today=TODAY, now=NOW)
    with pytest.raises(InvalidArgument) as error:
        violations.raise_if_any()
    return {v.field for v in error.value.violations}


@pytest.mark.parametrize(("value", "minor"), [
    (Money("CNY", 100, 500_000_000), 10_050),
    (Money("CNY", -3, -10_000_000), -301),
    (Money("JPY", 1200), 1200),
    (Money("KWD", 1, 5_000_000), 1005),
    (Money("CLF", 0, 100_000), 1),
])
def test_money_round_trips_through_minor_units(value: Money, minor: int) -> None:
    assert money.problem(value) is None
    assert money.to_minor(value) == minor
    assert money.from_minor(value.currency_code, minor) == value


@pytest.mark.parametrize(("value", "words"), [
    (Money("RMB", 1), "ISO 4217"),
    (Money("XAU", 1), "ISO 4217"),  # gold has no minor unit
    (Money("JPY", 1, 500_000_000), "whole minor units"),
    (Money("CNY", 1, 1), "whole minor units"),
    (Money("CNY", 1, -10_000_000), "same sign"),
    (Money("CNY", 0, 1_000_000_000), "nanos"),
    (Money("CNY", 10**15), "at most"),
])
def test_unusable_amounts_say_why(value: Money, words: str) -> None:
    problem = money.problem(value)
    assert problem is not None and words in problem


def test_conversion_rounds_half_even_to_the_target_minor_unit() -> None:
    assert money.convert(Money("USD", 10, 0), Decimal("7.1234"), "CNY") == Money("CNY", 71, 230_000_000)
    assert money.convert(Money("USD", 0, 50_000_000), Decimal("0.25"), "CNY") == Money("CNY", 0, 10_000_000)
    assert money.convert(Money("USD", 0, 70_000_000), Decimal("0.25"), "CNY") == Money("CNY", 0, 20_000_000)


def test_reporting_balance_is_the_balance_itself_converted_or_unknown() -> None:
    rates = {"USD": Decimal("7.1")}
    assert rules.reporting_balance(Money("CNY", 5), currency="CNY", rates=rates) == Money("CNY", 5)
    assert rules.reporting_balance(Money("USD", 2), currency="CNY", rates=rates) == Money("CNY", 14, 200_000_000)
    assert rules.reporting_balance(Money("EUR", 2), currency="CNY", rates=rates) is None


def test_bad_reporting_configuration_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="reporting currency"):
        rules.check_rates("RMB", {})
    with pytest.raises(ValueError, match="positive"):
        rules.check_rates("CNY", {"USD": Decimal("-1")})
    with pytest.raises(ValueError, match="ISO 4217"):
        rules.check_rates("CNY", {"DOLLAR": Decimal("7")})


def test_a_valid_holding_has_no_violations() -> None:
    assert not rules.validate(holding(), today=TODAY, now=NOW)
    closed = holding(status=5, close_date=date(2025, 1, 5))
    assert not rules.validate(closed, today=TODAY, now=NOW)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"currency": "usd"}, "holding.currency"),
    ({"balance": Money("USD", 1)}, "holding.balance.currency_code"),
    ({"balance": Money("CNY", -1)}, "holding.balance"),
    ({"balance": None}, "holding.balance"),
    ({"open_date": TODAY + timedelta(days=1)}, "holding.open_date"),
    ({"maturity_date": date(2023, 1, 1)}, "holding.maturity_date"),
    ({"status": 5}, "holding.close_date"),
    ({"close_date": date(2025, 1, 1)}, "holding.close_date"),
    ({"status": 5, "close_date": date(2020, 1, 1)}, "holding.close_date"),
    ({"balance_time": NOW + timedelta(hours=1)}, "holding.balance_time"),
    ({"product_type": 99}, "holding.product_type"),
    ({"source_system": "-bad"}, "holding.source_system"),
])
def test_each_rule_names_its_field(overrides: dict[str, object], field: str) -> None:
    assert field in fields(holding(**overrides))


def test_update_mask_allows_only_mutable_fields() -> None:
    rules.check_mask(["balance", "status"])
    for bad in (["currency"], ["product_type"], ["open_date"], []):
        with pytest.raises(InvalidArgument) as error:
            rules.check_mask(bad)
        assert error.value.violations[0].field == "update_mask"


def test_a_new_balance_without_a_time_is_measured_now_and_an_older_one_is_stale() -> None:
    current = holding(balance_time=NOW - timedelta(days=1))
    moved = rules.apply(current, holding(balance=Money("CNY", 7)), ["balance"], now=NOW)
    assert moved.balance == Money("CNY", 7) and moved.balance_time == NOW
    rules.check_balance_order(current, moved)
    older = rules.apply(current, holding(balance_time=NOW - timedelta(days=2)), ["balance_time"], now=NOW)
    with pytest.raises(FailedPrecondition) as error:
        rules.check_balance_order(current, older)
    assert error.value.reason == "STALE_BALANCE"


def test_relationship_ends_with_the_last_open_holding_and_reopens_with_a_new_one() -> None:
    customer = CustomerRef("C1", "rm-1", onboarded_on=date(2020, 1, 1), closed_on=None)
    assert rules.relationship_end(customer, OpenState(2, 1, date(2025, 1, 1))) == (False, None)
    assert rules.relationship_end(customer, OpenState(2, 0, date(2025, 3, 1))) == (True, date(2025, 3, 1))
    assert rules.relationship_end(customer, OpenState(0, 0, None)) == (False, None)
    closed = CustomerRef("C1", "rm-1", onboarded_on=date(2020, 1, 1), closed_on=date(2025, 3, 1))
    assert rules.relationship_end(closed, OpenState(3, 1, date(2025, 3, 1))) == (True, None)
    # Never before onboarding: holdings migrated from before the customer record existed.
    late = CustomerRef("C1", "rm-1", onboarded_on=date(2025, 6, 1), closed_on=None)
    assert rules.relationship_end(late, OpenState(1, 0, date(2025, 3, 1))) == (True, date(2025, 6, 1))


def test_the_customer_book_rule_applies_to_a_holdings_customer_reference() -> None:
    customer = CustomerRef("C1", "rm-1", onboarded_on=date(2020, 1, 1), closed_on=None)
    customer_rules.check_book(Principal("rm-1", frozenset({Role.RELATIONSHIP_MANAGER})), customer)
    customer_rules.check_book(Principal("analyst", frozenset({Role.ANALYST})), customer)
    customer_rules.check_book(Principal("rm-2", frozenset({Role.RELATIONSHIP_MANAGER, Role.ADMIN})), customer)
    with pytest.raises(PermissionDenied):
        customer_rules.check_book(Principal("rm-2", frozenset({Role.RELATIONSHIP_MANAGER})), customer)
