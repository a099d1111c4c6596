"""Pure consent and preference rules, without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from crm_profile.consents import rules
from crm_profile.consents.model import (
    EXPIRED,
    OPT_IN,
    OPT_OUT,
    OPTED_IN,
    OPTED_OUT,
    SOURCE_MERGE,
    ConsentEvidence,
    ConsentRecord,
    ContactPreferences,
    ContactWindow,
)
from crmkit.errors import InvalidArgument

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MARKETING, SURVEYS = 1, 5
SMS, EMAIL = 1, 2
BRANCH_FORM = 1


def record(purpose: int = MARKETING, channel: int = SMS, decision: int = OPT_IN, *, effective: datetime = NOW,
           recorded: datetime | None = None, seq: int = 1, expire: datetime | None = None, source: int = BRANCH_FORM,
           text_version: str = "MKT-CN-2025.03") -> ConsentRecord:
    return ConsentRecord(
        customer_id="C1", purpose=purpose, channel=channel, decision=decision,
        evidence=ConsentEvidence(source=source, source_reference="FORM-1", effective_at=effective,
                                 text_version=text_version, recorded_by="emp-1"),
        expire_at=expire, record_id=uuid.uuid4(), recorded_at=recorded or effective, seq=seq)


def violations(records: list[ConsentRecord]) -> tuple[dict[str, str], str]:
    with pytest.raises(InvalidArgument) as error:
        rules.validate_records(records, now=NOW)
    return {v.field: v.description for v in error.value.violations}, error.value.reason


def test_the_latest_effective_record_decides() -> None:
    states = rules.derive([record(decision=OPT_IN, effective=NOW - timedelta(days=2), seq=1),
                           record(decision=OPT_OUT, effective=NOW - timedelta(days=1), seq=2)], now=NOW)
    assert states[(MARKETING, SMS)].status == OPTED_OUT


def test_a_backdated_record_is_kept_but_does_not_decide() -> None:
    newer = record(decision=OPT_OUT, effective=NOW - timedelta(days=1), seq=1)
    backdated = record(decision=OPT_IN, effective=NOW - timedelta(days=30), recorded=NOW, seq=2)
    assert rules.derive([newer, backdated], now=NOW)[(MARKETING, SMS)].status == OPTED_OUT


def test_ties_on_effective_time_go_to_the_later_recording() -> None:
    first = record(decision=OPT_IN, recorded=NOW, seq=1)
    second = record(decision=OPT_OUT, recorded=NOW + timedelta(seconds=1), seq=2)
    assert rules.derive([second, first], now=NOW)[(MARKETING, SMS)].status == OPTED_OUT


def test_an_opt_in_past_its_expiry_is_expired() -> None:
    lapsed = record(effective=NOW - timedelta(days=10), expire=NOW - timedelta(days=1))
    assert rules.derive([lapsed], now=NOW)[(MARKETING, SMS)].status == EXPIRED


def test_a_pair_without_records_has_no_state() -> None:
    assert rules.derive([record()], now=NOW).keys() == {(MARKETING, SMS)}


@pytest.mark.parametrize("purpose", [0, 6, 99])
def test_an_unknown_purpose_is_named_with_its_reason(purpose: int) -> None:
    found, reason = violations([record(purpose=purpose)])
    assert "consents[0].purpose" in found
    assert reason == "UNKNOWN_CONSENT_PURPOSE"


def test_every_bad_field_is_named() -> None:
    bad = [
        record(channel=42),
        record(purpose=SURVEYS, text_version=""),  # an opt-in needs its wording version
        record(purpose=2, source=SOURCE_MERGE),
        record(purpose=3, decision=OPT_OUT, expire=NOW + timedelta(days=1)),
        record(purpose=4, effective=NOW + timedelta(minutes=10)),
        record(),  # the first MARKETING x SMS (the one above has no valid channel) ...
        record(),  # ... and this one repeats it
    ]
    found, reason = violations(bad)
    assert {"consents[0].channel", "consents[1].evidence.text_version",
            "consents[2].evidence.source", "consents[3].expire_time", "consents[4].evidence.effective_time",
            "consents[6]"} <= set(found)
    assert reason == "INVALID_ARGUMENT"


def test_an_opt_out_needs_no_text_version_and_missing_evidence_is_named() -> None:
    rules.validate_records([record(decision=OPT_OUT, text_version="")], now=NOW)
    found, _ = violations([ConsentRecord(customer_id="C1", purpose=MARKETING, channel=SMS, decision=OPT_IN,
                                         evidence=None)])
    assert "consents[0].evidence" in found


def test_no_records_or_too_many_are_refused() -> None:
    assert "consents" in violations([])[0]
    many = [record(purpose=1 + i % 5, channel=1 + i // 5) for i in range(40)] * 2
    assert "consents" in violations(many)[0]


def test_a_merge_keeps_the_stricter_state_and_reports_each_disagreement() -> None:
    opted_in = record(decision=OPT_IN, effective=NOW - timedelta(days=5))
    opted_out_later = record(decision=OPT_OUT, effective=NOW - timedelta(days=1))
    opted_out_earlier = record(decision=OPT_OUT, effective=NOW - timedelta(days=9))
    email_in = record(channel=EMAIL, decision=OPT_IN)
    # Survivor opted in; source opted out later: the joined ledger already decides an opt-out,
    # but the survivor's ledger must still say why its consent changed.
    merged = rules.reconcile([opted_in], [opted_out_later], now=NOW)
    assert [(c.survivor_status, c.source_status, c.result_status) for c in merged.conflicts] == [
        (OPTED_IN, OPTED_OUT, OPTED_OUT)]
    assert merged.opt_outs == ((MARKETING, SMS),)
    # Survivor opted out long ago, source opted in since: the joined ledger would allow, so an
    # opt-out is appended.
    merged = rules.reconcile([opted_out_earlier], [opted_in], now=NOW)
    assert merged.opt_outs == ((MARKETING, SMS),)
    assert merged.conflicts[0].result_status == OPTED_OUT
    # Absence beats an opt-in.
    merged = rules.reconcile([email_in], [], now=NOW)
    assert merged.opt_outs == ((MARKETING, EMAIL),)
    assert merged.conflicts[0].source_status == 0
    # Agreement is no conflict.
    assert rules.reconcile([opted_in], [email_in, opted_in], now=NOW).conflicts[0].channel == EMAIL


def test_windows_must_be_sound_and_not_overlap() -> None:
    prefs = ContactPreferences(customer_id="C1", time_zone="Asia/Shanghai", contact_windows=(
        ContactWindow(days=(1, 2), start=(9, 0, 0, 0), end=(12, 0, 0, 0)),
        ContactWindow(days=(2,), start=(11, 0, 0, 0), end=(13, 0, 0, 0)),  # overlaps on Tuesday
        ContactWindow(days=(3,), start=(18, 0, 0, 0), end=(17, 0, 0, 0)),  # inverted
        ContactWindow(days=(8,), start=(25, 0, 0, 0), end=None),
        ContactWindow(days=(), start=(20, 0, 0, 0), end=(24, 0, 0, 0)),  # up to midnight is fine
    ))
    found = {v.field for v in _items(rules.validate_preferences(prefs, today=NOW.date()))}
    assert found == {"contact_preferences.contact_windows[1]", "contact_preferences.contact_windows[2].end_time",
                     "contact_preferences.contact_windows[3].days[0]",
                     "contact_preferences.contact_windows[3].start_time",
                     "contact_preferences.contact_windows[3].end_time"}


def test_windows_need_a_known_time_zone_and_do_not_contact_needs_a_reason() -> None:
    prefs = ContactPreferences(customer_id="C1", contact_windows=(
        ContactWindow(days=(), start=(9, 0, 0, 0), end=(10, 0, 0, 0)),), do_not_contact=True,
        preferred_channels=(SMS, SMS, 77), language="not a tag!")
    found = {v.field for v in _items(rules.validate_preferences(prefs, today=NOW.date()))}
    assert found == {"contact_preferences.time_zone", "contact_preferences.do_not_contact_reason",
                     "contact_preferences.preferred_channels[1]", "contact_preferences.preferred_channels[2]",
                     "contact_preferences.language"}
    assert not rules.is_time_zone("Mars/Olympus") and rules.is_time_zone("Europe/Paris")


def test_clearing_do_not_contact_clears_its_reason_and_the_flag_lapses_after_its_last_day() -> None:
    flagged = ContactPreferences(customer_id="C1", do_not_contact=True, do_not_contact_reason=1,
                                 do_not_contact_note="case 7", do_not_contact_until=date(2026, 5, 31))
    cleared = rules.apply_preferences(flagged, ContactPreferences(customer_id="C1"), ["do_not_contact"], now=NOW)
    assert (cleared.do_not_contact_reason, cleared.do_not_contact_note, cleared.do_not_contact_until) == (0, "", None)
    assert not rules.in_force(flagged, today=NOW.date()).do_not_contact
    assert rules.in_force(flagged, today=date(2026, 5, 31)).do_not_contact
    set_now = rules.apply_preferences(ContactPreferences(customer_id="C1"), flagged, ["do_not_contact"], now=NOW)
    assert set_now.do_not_contact_at == NOW


def test_a_merge_keeps_either_do_not_contact_flag() -> None:
    quiet = ContactPreferences(customer_id="S", do_not_contact=True, do_not_contact_reason=4, version=3)
    plain = ContactPreferences(customer_id="K", preferred_channels=(EMAIL,), version=2)
    kept = rules.reconcile_preferences(plain, quiet, today=NOW.date())
    assert kept.do_not_contact_conflict and kept.preferences.do_not_contact
    assert kept.preferences.customer_id == "K" and kept.preferences.preferred_channels == (EMAIL,)
    assert not rules.reconcile_preferences(quiet, quiet, today=NOW.date()).do_not_contact_conflict


def _items(violations: object) -> list:  # type: ignore[type-arg]
    try:
        violations.raise_if_any()  # type: ignore[attr-defined]
    except InvalidArgument as error:
        return list(error.violations)
    return []
