"""The pure feature rules: windows, currency factors, materiality, request checks. No database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_profile.features import rules
from crmkit.errors import InvalidArgument
from crmkit.validation import Violations

NOW = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)


def test_windows_count_back_from_one_instant_and_its_utc_date() -> None:
    windows = rules.Windows.of(NOW.astimezone(timezone(timedelta(hours=8))), rfm_window_days=365)
    assert windows.now == NOW and windows.today == date(2026, 3, 1)
    assert windows.rfm_since == NOW - timedelta(days=365)
    assert windows.activity_since == NOW - timedelta(days=30)
    assert windows.recent_since == NOW - timedelta(days=90)
    assert windows.payroll_since == NOW - timedelta(days=60)
    assert windows.horizon == windows.rfm_since  # the widest window
    # 90 days of AUM end today; "90 days ago" is the day before the first of them.
    assert windows.aum_window_start == date(2025, 12, 2) and (windows.today - windows.aum_window_start).days == 89
    assert windows.aum_reference_day == date(2025, 12, 1)
    assert windows.recent_day == date(2025, 12, 2)


def test_a_short_rfm_window_leaves_the_horizon_at_ninety_days() -> None:
    windows = rules.Windows.of(NOW, rfm_window_days=30)
    assert windows.rfm_since == windows.activity_since and windows.horizon == NOW - timedelta(days=90)


def test_currency_factors_turn_minor_units_into_reporting_minor_units() -> None:
    currency = rules.Currency.of("CNY", {"USD": Decimal("7.10"), "JPY": Decimal("0.048"), "KWD": Decimal("23.1")})
    assert currency.factors["CNY"] == 1
    assert currency.factors["USD"] == Decimal("7.10")  # cents -> fen: both two decimals
    assert currency.factors["JPY"] == Decimal("4.8")  # yen have no minor unit: 1 yen = 4.8 fen
    assert currency.factors["KWD"] == Decimal("2.31")  # fils are thousandths
    assert rules.Currency.of("JPY", {}).factors == {"JPY": 1}


@pytest.mark.parametrize("days", [0, -1, 3651])
def test_an_rfm_window_outside_one_day_to_ten_years_stops_the_start(days: int) -> None:
    with pytest.raises(ValueError, match="RFM window"):
        rules.check_window(days)


def _values(**changes: object) -> dict[str, object]:
    values: dict[str, object] = dict.fromkeys(rules.MATERIAL, 0)
    values.update(tenure_days=10, recency_days=3, days_since_last_activity=1, days_to_next_maturity=5)
    values.update(changes)
    return values


def test_only_the_calendar_moving_on_is_not_a_material_change() -> None:
    before = _values()
    aged = _values(tenure_days=11, recency_days=4, days_since_last_activity=2, days_to_next_maturity=4)
    assert not rules.is_material_change(before, aged)
    assert rules.is_material_change(before, _values(aum_minor=1))
    assert rules.is_material_change(before, _values(login_count_30d=1))
    assert rules.is_material_change(before, _values(last_activity_at=NOW))  # a new event
    assert rules.is_material_change(None, before)  # the first computation is always published
    assert set(rules.CALENDAR_COUNTS.values()) <= set(rules.MATERIAL)  # the dates they count from are


def test_customer_names_are_checked_one_by_one_and_deduplicated() -> None:
    violations = Violations()
    ids = rules.customer_ids_of(["customers/A1", "customers/A1", "people/B", "customers/C-3"], violations)
    assert ids == ["A1", "C-3"]
    with pytest.raises(InvalidArgument) as error:
        violations.raise_if_any()
    assert [v.field for v in error.value.violations] == ["customers[2]"]


def test_more_than_a_thousand_customers_is_one_violation_of_the_list() -> None:
    violations = Violations()
    rules.customer_ids_of([f"customers/C{n}" for n in range(1001)], violations)
    with pytest.raises(InvalidArgument) as error:
        violations.raise_if_any()
    assert [v.field for v in error.value.violations] == ["customers"]


def test_changed_since_may_not_be_in_the_future() -> None:
    violations = Violations()
    rules.check_changed_since(NOW - timedelta(days=1), now=NOW, violations=violations)
    rules.check_changed_since(None, now=NOW, violations=violations)
    assert not violations
    rules.check_changed_since(NOW + timedelta(hours=1), now=NOW, violations=violations)
    assert violations
