"""The alert triggers' pure decisions: which contact details changed (digests, never the values)
and when a contact-detail-changes rule fires (count within the window, its fields, cooldown)."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_risk.alerts.model import (
    AbnormalTransactions,
    AlertRule,
    ComplaintsSpike,
    ContactDetailChanges,
    Kind,
    LargeOutflows,
    Money,
    Severity,
)
from crm_risk.triggers import rules
from crm_risk.triggers.model import (
    AbnormalTransaction,
    Baseline,
    ContactChange,
    FiledComplaint,
    Maturing,
    Transaction,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def rule(min_changes: int = 3, fields: tuple[str, ...] = (), *, days: int = 30, enabled: bool = True,
         cooldown: timedelta | None = None) -> AlertRule:
    return AlertRule(alert_rule_id="contact", display_name="Contact churn", kind=Kind.CONTACT_DETAIL_CHANGES,
                     severity=Severity.HIGH, window=timedelta(days=days), enabled=enabled, cooldown=cooldown,
                     parameters=ContactDetailChanges(min_changes=min_changes, fields=fields))


def change(field: str, days_ago: float) -> ContactChange:
    return ContactChange(field=field, changed_at=NOW - timedelta(days=days_ago), event_id=f"{field}-{days_ago}")


def test_a_digest_hides_the_value_and_ignores_spacing_and_case() -> None:
    d = rules.digest(KEY, "email", "Wang.Li@Example.com")
    assert d == rules.digest(KEY, "email", "  wang.li@example.com ")
    assert "example" not in d and d != rules.digest(KEY, "email", "li.wang@example.com")
    assert d != rules.digest(b"x" * 32, "email", "wang.li@example.com")
    assert rules.digest(KEY, "email", "  ") == ""


def test_only_fields_seen_before_and_now_different_are_changes() -> None:
    assert rules.changed_fields({}, {"email": "a", "mobile_phone": "b", "address": "c"}) == []
    assert rules.changed_fields({"email": "a", "mobile_phone": "b", "address": "c"},
                                {"email": "a2", "mobile_phone": "b", "address": ""}) == ["email", "address"]


def test_three_changes_in_thirty_days_fire_two_do_not() -> None:
    three = [change("mobile_phone", 20), change("email", 10), change("address", 1)]
    fired = rules.contact_rule_fires(rule(3), three, now=NOW, last_alert_at=None)
    assert fired is not None and [c.field for c in fired.changes] == ["mobile_phone", "email", "address"]
    assert rules.contact_rule_fires(rule(3), three[1:], now=NOW, last_alert_at=None) is None


def test_changes_outside_the_window_or_of_other_fields_do_not_count() -> None:
    changes = [change("mobile_phone", 31), change("email", 10), change("address", 1)]
    assert rules.contact_rule_fires(rule(3), changes, now=NOW, last_alert_at=None) is None
    assert rules.contact_rule_fires(rule(3, days=40), changes, now=NOW, last_alert_at=None) is not None
    phones = [change("mobile_phone", 3), change("mobile_phone", 2), change("email", 1)]
    assert rules.contact_rule_fires(rule(3, ("mobile_phone",)), phones, now=NOW, last_alert_at=None) is None
    assert rules.contact_rule_fires(rule(2, ("mobile_phone",)), phones, now=NOW, last_alert_at=None) is not None


def test_a_disabled_rule_or_one_in_its_cooldown_does_not_fire() -> None:
    three = [change("mobile_phone", 3), change("email", 2), change("address", 1)]
    assert rules.contact_rule_fires(rule(3, enabled=False), three, now=NOW, last_alert_at=None) is None
    # Cooldown unset: the window (30 days).
    assert rules.contact_rule_fires(rule(3), three, now=NOW, last_alert_at=NOW - timedelta(days=29)) is None
    assert rules.contact_rule_fires(rule(3), three, now=NOW, last_alert_at=NOW - timedelta(days=31)) is not None
    short = rule(3, cooldown=timedelta(days=1))
    assert rules.contact_rule_fires(short, three, now=NOW, last_alert_at=NOW - timedelta(days=2)) is not None


def test_the_summary_names_fields_not_values() -> None:
    fired = rules.contact_rule_fires(rule(2), [change("email", 2), change("email", 1)], now=NOW, last_alert_at=None)
    assert fired is not None
    assert rules.summary(rule(2), fired) == "2 contact-detail changes (email) within 30 days"


def spike(min_complaints: int = 3, *, days: int = 30, enabled: bool = True,
          cooldown: timedelta | None = None) -> AlertRule:
    return AlertRule(alert_rule_id="spike", display_name="Complaint spike", kind=Kind.COMPLAINTS_SPIKE,
                     severity=Severity.HIGH, window=timedelta(days=days), enabled=enabled, cooldown=cooldown,
                     parameters=ComplaintsSpike(min_complaints=min_complaints))


def filed(number: int, days_ago: float) -> FiledComplaint:
    return FiledComplaint(complaint_id=f"c-{number}", customer_id="C1", filed_at=NOW - timedelta(days=days_ago))


def test_a_complaints_spike_counts_complaints_within_the_window_up_to_now() -> None:
    three = [filed(3, 0), filed(1, 20), filed(2, 10)]
    fired = rules.complaint_rule_fires(spike(3), three, now=NOW, last_alert_at=None)
    assert fired is not None and [c.complaint_id for c in fired.complaints] == ["c-1", "c-2", "c-3"]
    assert rules.complaint_summary(spike(3), fired) == "3 complaints within 30 days"
    assert rules.complaint_rule_fires(spike(4), three, now=NOW, last_alert_at=None) is None
    # Outside the window, or after now (filed later than the complaint being evaluated): not counted.
    assert rules.complaint_rule_fires(spike(3, days=15), three, now=NOW, last_alert_at=None) is None
    assert rules.complaint_rule_fires(spike(3), three, now=NOW - timedelta(days=1), last_alert_at=None) is None
    assert rules.complaint_rule_fires(spike(1), [filed(1, 0)], now=NOW, last_alert_at=None) is not None


def test_a_complaints_spike_keeps_its_cooldown_and_other_kinds_never_count() -> None:
    three = [filed(1, 3), filed(2, 2), filed(3, 1)]
    assert rules.complaint_rule_fires(spike(3), three, now=NOW, last_alert_at=NOW - timedelta(days=29)) is None
    assert rules.complaint_rule_fires(spike(3), three, now=NOW, last_alert_at=NOW - timedelta(days=31)) is not None
    short = spike(3, cooldown=timedelta(hours=1))
    assert rules.complaint_rule_fires(short, three, now=NOW, last_alert_at=NOW - timedelta(hours=2)) is not None
    assert rules.complaint_rule_fires(spike(3, enabled=False), three, now=NOW, last_alert_at=None) is None
    assert rules.complaint_rule_fires(rule(3), three, now=NOW, last_alert_at=None) is None
    assert rules.contact_rule_fires(spike(1), [change("email", 1)], now=NOW, last_alert_at=None) is None


def abnormal(min_z: float = 0.0, min_amount: int = 1000, min_transactions: int = 0, *, days: int = 7,
             enabled: bool = True) -> AlertRule:
    return AlertRule(alert_rule_id="abnormal", display_name="Abnormal", kind=Kind.ABNORMAL_TRANSACTIONS,
                     severity=Severity.HIGH, window=timedelta(days=days), enabled=enabled,
                     parameters=AbnormalTransactions(min_z_score=min_z, min_amount=Money("CNY", min_amount),
                                                     min_transactions=min_transactions))


def outflows(min_amount: int = 100_000, share: float = 0.0, *, transfers: bool = False,
             currency: str = "CNY") -> AlertRule:
    return AlertRule(alert_rule_id="outflows", display_name="Outflows", kind=Kind.LARGE_OUTFLOWS,
                     severity=Severity.HIGH, window=timedelta(days=7), enabled=True,
                     parameters=LargeOutflows(min_amount=Money(currency, min_amount), min_balance_share=share,
                                              include_own_account_transfers=transfers))


def tx(amount: float, *, direction: int = rules.DEBIT, kind: int = 2) -> Transaction:
    return Transaction(customer_id="C1", event="customers/C1/events/e", position=1, occurred_at=NOW,
                       direction=direction, kind=kind, amount=Decimal(str(amount)), currency_code="CNY")


def test_the_running_baseline_matches_the_plain_mean_and_deviation() -> None:
    amounts = [120.5, 80.0, 99.9, 300.0, 45.25, 101.0, 99.0]
    baseline = Baseline()
    for amount in amounts:
        baseline = baseline.add(amount)
    assert baseline.count == len(amounts)
    assert math.isclose(baseline.mean, statistics.mean(amounts))
    assert math.isclose(baseline.stddev, statistics.stdev(amounts))
    assert Baseline().add(5).stddev == 0.0


def baseline_of(*amounts: float) -> Baseline:
    baseline = Baseline()
    for amount in amounts:
        baseline = baseline.add(amount)
    return baseline


def test_a_transaction_is_abnormal_beyond_the_z_score_with_enough_history_and_a_minimum_amount() -> None:
    usual = baseline_of(*[100.0, 120.0] * 5)  # mean 110, stddev ~10.5
    assert rules.z_score(baseline_of(*[100.0] * 9), Decimal(5000)) is None  # 9 < MIN_HISTORY
    z = rules.abnormal_z(abnormal(min_amount=100), usual, tx(150))
    assert z is not None and 3 < z < 4  # 40 above the mean: ~3.8 deviations (default threshold 3)
    assert rules.abnormal_z(abnormal(min_z=4, min_amount=100), usual, tx(150)) is None
    assert rules.abnormal_z(abnormal(min_amount=1000), usual, tx(150)) is None  # below min_amount
    assert rules.abnormal_z(abnormal(min_amount=100, enabled=False), usual, tx(150)) is None
    flat = baseline_of(*[100.0] * 10)
    assert rules.abnormal_z(abnormal(min_amount=100), flat, tx(101)) == math.inf
    assert rules.abnormal_z(abnormal(min_amount=100), flat, tx(100)) is None
    other = AlertRule(alert_rule_id="usd", display_name="USD", kind=Kind.ABNORMAL_TRANSACTIONS, severity=1,
                      window=timedelta(days=7), enabled=True,
                      parameters=AbnormalTransactions(min_amount=Money("USD", 1)))
    assert rules.abnormal_z(other, usual, tx(5000)) is None  # no exchange rates: never


def test_an_abnormal_rule_counts_its_abnormal_transactions_in_the_window() -> None:
    def found(days_ago: float) -> AbnormalTransaction:
        return AbnormalTransaction(event=f"e{days_ago}", occurred_at=NOW - timedelta(days=days_ago), direction=2,
                                   amount=Decimal(5000), z_score=5.0)
    seen = [found(8), found(3), found(0)]
    assert rules.abnormal_rule_fires(abnormal(min_transactions=3), seen, now=NOW, last_alert_at=None) is None
    fired = rules.abnormal_rule_fires(abnormal(min_transactions=2), seen, now=NOW, last_alert_at=None)
    assert fired is not None and [a.event for a in fired] == ["e3", "e0"]
    assert rules.abnormal_rule_fires(abnormal(), seen, now=NOW, last_alert_at=NOW - timedelta(days=1)) is None
    assert "5.0 standard deviations" in rules.abnormal_description(found(0))


def test_large_outflows_reach_the_amount_and_the_share_of_the_balance_before_them() -> None:
    fires = rules.outflow_rule_fires
    assert fires(outflows(100_000), total=Decimal(99_999), currency_code="CNY", balance=None, now=NOW,
                 last_alert_at=None) is None
    firing = fires(outflows(100_000), total=Decimal(100_000), currency_code="CNY", balance=None, now=NOW,
                   last_alert_at=None)
    assert firing is not None and firing.share is None
    # 300k out of 1M before (700k left): 30 %.
    firing = fires(outflows(100_000, 0.3), total=Decimal(300_000), currency_code="CNY", balance=Decimal(700_000),
                   now=NOW, last_alert_at=None)
    assert firing is not None and math.isclose(firing.share or 0, 0.3)
    assert rules.outflow_summary(outflows(100_000, 0.3), firing, "CNY") == (
        "outflows of 300000.00 CNY within 7 days (30% of the balance)")
    assert fires(outflows(100_000, 0.5), total=Decimal(300_000), currency_code="CNY", balance=Decimal(700_000),
                 now=NOW, last_alert_at=None) is None
    assert fires(outflows(100_000, 0.3), total=Decimal(300_000), currency_code="CNY", balance=None,
                 now=NOW, last_alert_at=None) is None  # the share cannot be judged
    assert fires(outflows(100_000, currency="USD"), total=Decimal(300_000), currency_code="CNY", balance=None,
                 now=NOW, last_alert_at=None) is None
    assert fires(outflows(100_000), total=Decimal(300_000), currency_code="CNY", balance=None, now=NOW,
                 last_alert_at=NOW - timedelta(days=6)) is None  # cooldown: the window


def test_transfers_count_as_outflows_only_when_the_rule_includes_own_account_transfers() -> None:
    transfer = tx(10, kind=rules.TRANSFER)
    assert not rules.counts_as_outflow(outflows(), transfer)
    assert rules.counts_as_outflow(outflows(transfers=True), transfer)
    assert rules.counts_as_outflow(outflows(), tx(10, kind=4))
    assert not rules.counts_as_outflow(outflows(), tx(10, direction=1, kind=4))


def test_a_rule_watching_maturities_looks_at_holdings_maturing_within_its_span() -> None:
    watching = AlertRule(alert_rule_id="m", display_name="Before maturity", kind=Kind.LARGE_OUTFLOWS, severity=3,
                         window=timedelta(days=7), enabled=True,
                         parameters=LargeOutflows(min_amount=Money("CNY", 1), before_maturity=timedelta(days=14)))
    assert rules.maturity_span(outflows(), tx(10)) is None
    assert rules.maturity_span(watching, tx(10)) == (NOW.date(), (NOW + timedelta(days=14)).date())
    held = [Maturing("TD-1", NOW.date(), Decimal(100)), Maturing("TD-2", NOW.date(), Decimal(50))]
    assert rules.maturing_balance(held) == Decimal(150)
    assert rules.maturing_balance([*held, Maturing("TD-3", NOW.date(), None)]) is None
