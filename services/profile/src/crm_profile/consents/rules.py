"""Pure decisions about consents and contact preferences. No I/O here.

The current consent of a purpose x channel is decided by the ledger record with the latest
`effective_at` (ties: the later `recorded_at`, then the later ledger position). No record means
no consent. An opt-in past its `expire_at` is EXPIRED, which forbids contact like an opt-out.
"""

from __future__ import annotations

import dataclasses
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from crm_profile.consents.model import (
    EXPIRED,
    OPT_IN,
    OPT_OUT,
    OPTED_IN,
    OPTED_OUT,
    SOURCE_MERGE,
    ConsentDecision,
    ConsentPurpose,
    ConsentRecord,
    ConsentSource,
    ConsentState,
    ContactChannel,
    ContactPreferences,
    ContactWindow,
    DoNotContactReason,
    Pair,
    TimeOfDay,
)
from crm_profile.customers.rules import LANGUAGE_TAG
from crmkit.errors import InvalidArgument
from crmkit.validation import Violations

PURPOSES = frozenset(ConsentPurpose) - {ConsentPurpose.UNSPECIFIED}
CHANNELS = frozenset(ContactChannel) - {ContactChannel.UNSPECIFIED}
DECISIONS = frozenset(ConsentDecision) - {ConsentDecision.UNSPECIFIED}
SOURCES = frozenset(ConsentSource) - {ConsentSource.UNSPECIFIED}
DO_NOT_CONTACT_REASONS = frozenset(DoNotContactReason) - {DoNotContactReason.UNSPECIFIED}
DAYS_OF_WEEK = range(1, 8)  # google.type.DayOfWeek, MONDAY to SUNDAY

MAX_RECORDS_PER_CALL = 50
MAX_FUTURE_SKEW = timedelta(minutes=5)
TEXT_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_SOURCE_REFERENCE = 128
MAX_RECORDED_BY = 64
MAX_PREFERRED_CHANNELS = 8
MAX_WINDOWS = 14
MAX_NOTE = 500
END_OF_DAY: TimeOfDay = (24, 0, 0, 0)

PREFERENCE_PATHS = frozenset({
    "preferred_channels", "contact_windows", "time_zone", "language", "do_not_contact",
    "do_not_contact_reason", "do_not_contact_note", "do_not_contact_until",
})

# --- the ledger ------------------------------------------------------------------------------


def validate_records(records: Sequence[ConsentRecord], *, now: datetime) -> None:
    """INVALID_ARGUMENT naming `consents[i].<field>` for every broken rule, all at once.

    The reason is `UNKNOWN_CONSENT_PURPOSE` when a purpose is unknown (the case callers branch on).
    """
    v = Violations()
    v.check(0 < len(records) <= MAX_RECORDS_PER_CALL, "consents",
            f"must hold 1 to {MAX_RECORDS_PER_CALL} consent decisions")
    unknown_purpose = False
    seen: dict[Pair, int] = {}
    for i, record in enumerate(records):
        at = f"consents[{i}]"
        if not v.enum(record.purpose, f"{at}.purpose", PURPOSES, "ConsentPurpose",
                      required="is required: a known ConsentPurpose, e.g. CONSENT_PURPOSE_MARKETING"):
            unknown_purpose = True
        v.enum(record.channel, f"{at}.channel", CHANNELS, "ContactChannel",
               required="is required: a known ContactChannel, e.g. CONTACT_CHANNEL_SMS")
        v.enum(record.decision, f"{at}.decision", DECISIONS, "ConsentDecision",
               required="is required: CONSENT_DECISION_OPT_IN or _OPT_OUT")
        if record.purpose in PURPOSES and record.channel in CHANNELS:
            first = seen.setdefault(record.pair, i)
            v.check(first == i, at, f"repeats the purpose x channel of consents[{first}]; give each pair once")
        _validate_evidence(record, at, now, v)
        if record.expire_at is not None and v.check(record.decision != OPT_OUT, f"{at}.expire_time",
                                                    "is only allowed on an opt-in"):
            effective = record.evidence.effective_at if record.evidence else None
            v.check(effective is None or record.expire_at > effective, f"{at}.expire_time",
                    "must be after evidence.effective_time")
    if v:
        try:
            v.raise_if_any()
        except InvalidArgument as error:
            if unknown_purpose:
                raise InvalidArgument(error.violations, reason="UNKNOWN_CONSENT_PURPOSE") from None
            raise


def _validate_evidence(record: ConsentRecord, at: str, now: datetime, v: Violations) -> None:
    evidence = record.evidence
    if not v.check(evidence is not None, f"{at}.evidence", "is required: how, when and by whom it was captured"):
        return
    assert evidence is not None
    at = f"{at}.evidence"
    if v.enum(evidence.source, f"{at}.source", SOURCES, "ConsentSource", required="is required: a known ConsentSource"):
        v.check(evidence.source != SOURCE_MERGE, f"{at}.source",
                "CONSENT_SOURCE_MERGE is written by MergeCustomers only")
    v.max_length(evidence.source_reference, f"{at}.source_reference", MAX_SOURCE_REFERENCE)
    v.text(evidence.source_reference, f"{at}.source_reference")
    if v.check(evidence.effective_at is not None, f"{at}.effective_time", "is required"):
        assert evidence.effective_at is not None
        v.check(evidence.effective_at <= now + MAX_FUTURE_SKEW, f"{at}.effective_time",
                "must not be more than 5 minutes in the future")
    if evidence.text_version or record.decision == OPT_IN:
        v.pattern(evidence.text_version, f"{at}.text_version", TEXT_VERSION,
                  "is required on an opt-in: 1 to 64 characters from A-Z a-z 0-9 . _ -")
    if v.required(evidence.recorded_by, f"{at}.recorded_by"):
        v.max_length(evidence.recorded_by, f"{at}.recorded_by", MAX_RECORDED_BY)
        v.text(evidence.recorded_by, f"{at}.recorded_by")


def _ledger_order(record: ConsentRecord) -> tuple[datetime, datetime, int]:
    assert record.evidence is not None and record.evidence.effective_at is not None
    assert record.recorded_at is not None
    return (record.evidence.effective_at, record.recorded_at, record.seq)


def status_of(record: ConsentRecord, *, now: datetime) -> int:
    if record.decision == OPT_OUT:
        return OPTED_OUT
    return OPTED_IN if record.expire_at is None or record.expire_at > now else EXPIRED


def derive(records: Iterable[ConsentRecord], *, now: datetime) -> dict[Pair, ConsentState]:
    """The current state of every pair with at least one (counting) record."""
    deciding: dict[Pair, ConsentRecord] = {}
    for record in records:
        current = deciding.get(record.pair)
        if current is None or _ledger_order(record) > _ledger_order(current):
            deciding[record.pair] = record
    return {pair: _state(record, now) for pair, record in deciding.items()}


def _state(record: ConsentRecord, now: datetime) -> ConsentState:
    assert record.evidence is not None and record.evidence.effective_at is not None
    return ConsentState(purpose=record.purpose, channel=record.channel, status=status_of(record, now=now),
                        effective_at=record.evidence.effective_at, expire_at=record.expire_at,
                        record_name=record.name)


# --- merging two ledgers ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentConflict:
    purpose: int
    channel: int
    survivor_status: int  # 0 when the survivor had no record
    source_status: int
    result_status: int


@dataclass(frozen=True)
class ConsentReconciliation:
    conflicts: tuple[ConsentConflict, ...]
    # Pairs on which the merge must append a MERGE-sourced opt-out to the survivor: where the
    # survivor loses an opt-in (so its own ledger says why), and where the joined ledger would
    # otherwise allow what the stricter of the two customers did not.
    opt_outs: tuple[Pair, ...]


def reconcile(survivor: Sequence[ConsentRecord], source: Sequence[ConsentRecord], *,
              now: datetime) -> ConsentReconciliation:
    """What a merge keeps: on each pair the stricter state (absence, opt-out and expiry beat an
    opt-in). Where the customers disagree the conflict is reported. An opt-out is appended when
    the survivor was opted in and the source was not, even where the source's own later record
    already decides, because the survivor's ledger must explain why its consent changed; and
    when the joined ledger would allow what the stricter side does not. Never widens consent."""
    before_survivor, before_source = derive(survivor, now=now), derive(source, now=now)
    joined = derive([*survivor, *source], now=now)
    conflicts, opt_outs = [], []
    for pair in sorted(set(before_survivor) | set(before_source)):
        mine, theirs = before_survivor.get(pair), before_source.get(pair)
        mine_allows, theirs_allows = bool(mine and mine.allowed), bool(theirs and theirs.allowed)
        appended = not (mine_allows and theirs_allows) and (mine_allows or joined[pair].allowed)
        if appended:
            opt_outs.append(pair)
        if mine_allows != theirs_allows:
            result = OPTED_OUT if appended else joined[pair].status
            conflicts.append(ConsentConflict(pair[0], pair[1], mine.status if mine else 0,
                                             theirs.status if theirs else 0, result))
    return ConsentReconciliation(tuple(conflicts), tuple(opt_outs))


# --- contact preferences ---------------------------------------------------------------------


def check_preference_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, PREFERENCE_PATHS)
    v.raise_if_any()


def apply_preferences(current: ContactPreferences, changes: ContactPreferences, paths: Sequence[str], *,
                      now: datetime) -> ContactPreferences:
    """The preferences after the update: masked fields replaced, the do-not-contact flag's
    bookkeeping (time set, reason cleared with the flag) kept consistent."""
    updated = dataclasses.replace(current, **{p: getattr(changes, p) for p in paths})
    if not updated.do_not_contact:
        return dataclasses.replace(updated, do_not_contact_reason=0, do_not_contact_note="",
                                   do_not_contact_at=None, do_not_contact_until=None)
    if not current.do_not_contact:
        updated = dataclasses.replace(updated, do_not_contact_at=now)
    return updated


def validate_preferences(preferences: ContactPreferences, *, today: date,
                         prefix: str = "contact_preferences.") -> Violations:
    v = Violations()
    channels = preferences.preferred_channels
    v.check(len(channels) <= MAX_PREFERRED_CHANNELS, f"{prefix}preferred_channels",
            f"must hold at most {MAX_PREFERRED_CHANNELS} channels")
    for i, channel in enumerate(channels):
        v.enum(channel, f"{prefix}preferred_channels[{i}]", CHANNELS, "ContactChannel",
               required="is not a known ContactChannel")
        v.check(channel not in channels[:i], f"{prefix}preferred_channels[{i}]", "repeats an earlier channel")
    _validate_windows(preferences.contact_windows, prefix, v)
    if preferences.contact_windows:
        v.check(bool(preferences.time_zone), f"{prefix}time_zone", "is required when contact_windows are set")
    if preferences.time_zone:
        v.check(is_time_zone(preferences.time_zone), f"{prefix}time_zone",
                "is not a known IANA time zone, e.g. Asia/Shanghai")
    if preferences.language:
        v.pattern(preferences.language, f"{prefix}language", LANGUAGE_TAG,
                  "must be a BCP-47 language tag, e.g. zh-CN")
    if preferences.do_not_contact:
        v.enum(preferences.do_not_contact_reason, f"{prefix}do_not_contact_reason", DO_NOT_CONTACT_REASONS,
               "DoNotContactReason", required="is required when do_not_contact is set: a known DoNotContactReason")
        v.max_length(preferences.do_not_contact_note, f"{prefix}do_not_contact_note", MAX_NOTE)
        v.text(preferences.do_not_contact_note, f"{prefix}do_not_contact_note", multiline=True)
        if preferences.do_not_contact_until is not None:
            v.check(preferences.do_not_contact_until >= today, f"{prefix}do_not_contact_until",
                    "must not be in the past")
    return v


def _validate_windows(windows: Sequence[ContactWindow], prefix: str, v: Violations) -> None:
    v.check(len(windows) <= MAX_WINDOWS, f"{prefix}contact_windows", f"must hold at most {MAX_WINDOWS} windows")
    sound: list[tuple[int, ContactWindow]] = []
    for i, window in enumerate(windows):
        at = f"{prefix}contact_windows[{i}]"
        ok = True
        for j, day in enumerate(window.days):
            ok &= v.enum(day, f"{at}.days[{j}]", DAYS_OF_WEEK, "DayOfWeek", required="must be MONDAY to SUNDAY")
            ok &= v.check(day not in window.days[:j], f"{at}.days[{j}]", "repeats an earlier day")
        start_ok = v.check(window.start is not None and is_time_of_day(window.start), f"{at}.start_time",
                           "is required: a time of day from 00:00 to 23:59:59")
        end_ok = v.check(window.end is not None and (is_time_of_day(window.end) or window.end == END_OF_DAY),
                         f"{at}.end_time", "is required: a time of day up to 24:00 (windows cannot cross midnight)")
        if start_ok and end_ok:
            assert window.start is not None and window.end is not None
            ok &= v.check(window.end > window.start, f"{at}.end_time", "must be after start_time")
        if ok and start_ok and end_ok:
            sound.append((i, window))
    for n, (i, a) in enumerate(sound):
        for j, b in sound[:n]:
            if _overlap(a, b):
                v.add(f"{prefix}contact_windows[{i}]", f"overlaps contact_windows[{j}]")


def _overlap(a: ContactWindow, b: ContactWindow) -> bool:
    same_day = not a.days or not b.days or bool(set(a.days) & set(b.days))
    assert a.start and a.end and b.start and b.end
    return same_day and a.start < b.end and b.start < a.end


def is_time_of_day(value: TimeOfDay) -> bool:
    hours, minutes, seconds, nanos = value
    return 0 <= hours <= 23 and 0 <= minutes <= 59 and 0 <= seconds <= 59 and 0 <= nanos <= 999_999_999


def is_time_zone(name: str) -> bool:
    if name.startswith("/") or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class PreferenceReconciliation:
    preferences: ContactPreferences
    do_not_contact_conflict: bool


def reconcile_preferences(survivor: ContactPreferences, source: ContactPreferences, *,
                          today: date) -> PreferenceReconciliation:
    """The survivor's preferences after a merge: its own, the source's where it has none, and a
    do-not-contact flag of either customer kept (a conflict when only one had it)."""
    kept = survivor
    if survivor.version == 0 and source.version != 0:
        kept = dataclasses.replace(source, customer_id=survivor.customer_id, language=survivor.language,
                                   version=0, updated_at=None)
    mine, theirs = survivor.do_not_contact_on(today), source.do_not_contact_on(today)
    if theirs and not mine:
        kept = dataclasses.replace(
            kept, do_not_contact=True, do_not_contact_reason=source.do_not_contact_reason,
            do_not_contact_note=source.do_not_contact_note, do_not_contact_at=source.do_not_contact_at,
            do_not_contact_until=source.do_not_contact_until)
    return PreferenceReconciliation(kept, mine != theirs)


def in_force(preferences: ContactPreferences, *, today: date) -> ContactPreferences:
    """The preferences as they apply today: a do-not-contact flag past its last day is cleared."""
    if preferences.do_not_contact and not preferences.do_not_contact_on(today):
        return dataclasses.replace(preferences, do_not_contact=False, do_not_contact_reason=0,
                                   do_not_contact_note="", do_not_contact_at=None, do_not_contact_until=None)
    return preferences
