"""The alert triggers' pure decisions: which contact details changed (digests, never the values)
and when a contact-detail-changes rule fires (count within the window, its fields, cooldown)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_risk.alerts.model import AlertRule, ComplaintsSpike, ContactDetailChanges, Kind, Severity
from crm_risk.triggers import rules
from crm_risk.triggers.model import ContactChange, FiledComplaint

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
