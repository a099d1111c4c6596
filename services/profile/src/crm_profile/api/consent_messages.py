"""Consent and contact-preference protos <-> domain. Nothing else: no rules, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import dayofweek_pb2, timeofday_pb2

from crm.profile.v1 import consent_pb2
from crm_profile.consents.model import (
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    ContactPreferences,
    ContactWindow,
    TimeOfDay,
)
from crm_profile.customers.model import Customer
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import from_date, to_date


def timestamp(message: Timestamp, field: str, bad: list[FieldViolation]) -> datetime | None:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        bad.append(FieldViolation(field, "is not a valid timestamp"))
        return None


def stamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    message = Timestamp()
    message.FromDatetime(moment)
    return message


def record_to_domain(message: consent_pb2.ConsentRecord, at: str, bad: list[FieldViolation]) -> ConsentRecord:
    evidence = None
    if message.HasField("evidence"):
        e = message.evidence
        evidence = ConsentEvidence(
            source=e.source, source_reference=e.source_reference,
            effective_at=timestamp(e.effective_time, f"{at}.evidence.effective_time", bad)
            if e.HasField("effective_time") else None,
            text_version=e.text_version, recorded_by=e.recorded_by)
    return ConsentRecord(
        customer_id="", purpose=message.purpose, channel=message.channel, decision=message.decision,
        evidence=evidence,
        expire_at=timestamp(message.expire_time, f"{at}.expire_time", bad) if message.HasField("expire_time") else None,
    )


def records_to_domain(messages: list[consent_pb2.ConsentRecord]) -> list[ConsentRecord]:
    bad: list[FieldViolation] = []
    records = [record_to_domain(m, f"consents[{i}]", bad) for i, m in enumerate(messages)]
    if bad:
        raise InvalidArgument(bad)
    return records


def record_to_proto(record: ConsentRecord) -> consent_pb2.ConsentRecord:
    assert record.evidence is not None
    e = record.evidence
    message = consent_pb2.ConsentRecord(
        name=record.name, record_id=str(record.record_id), purpose=consent_pb2.ConsentPurpose.ValueType(record.purpose),
        channel=consent_pb2.ContactChannel.ValueType(record.channel),
        decision=consent_pb2.ConsentDecision.ValueType(record.decision),
        evidence=consent_pb2.ConsentEvidence(
            source=consent_pb2.ConsentSource.ValueType(e.source), source_reference=e.source_reference,
            effective_time=stamp(e.effective_at), text_version=e.text_version, recorded_by=e.recorded_by),
        expire_time=stamp(record.expire_at), record_time=stamp(record.recorded_at), recorder=record.recorder,
        origin_customer=record.origin_customer,
    )
    return message


def state_to_proto(state: ConsentState) -> consent_pb2.ConsentState:
    return consent_pb2.ConsentState(
        purpose=consent_pb2.ConsentPurpose.ValueType(state.purpose),
        channel=consent_pb2.ContactChannel.ValueType(state.channel),
        status=consent_pb2.ConsentStatus.ValueType(state.status),
        effective_time=stamp(state.effective_at), expire_time=stamp(state.expire_at), record=state.record_name)


def _time_of_day(message: timeofday_pb2.TimeOfDay) -> TimeOfDay:
    return (message.hours, message.minutes, message.seconds, message.nanos)


def preferences_to_domain(message: consent_pb2.ContactPreferences, *, customer_id: str) -> ContactPreferences:
    bad: list[FieldViolation] = []
    until = None
    try:
        until = to_date(message.do_not_contact_until) if message.HasField("do_not_contact_until") else None
    except ValueError:
        bad.append(FieldViolation("contact_preferences.do_not_contact_until", "is not a real calendar date"))
    if bad:
        raise InvalidArgument(bad)
    return ContactPreferences(
        customer_id=customer_id,
        preferred_channels=tuple(message.preferred_channels),
        contact_windows=tuple(ContactWindow(
            days=tuple(w.days),
            start=_time_of_day(w.start_time) if w.HasField("start_time") else None,
            end=_time_of_day(w.end_time) if w.HasField("end_time") else None,
        ) for w in message.contact_windows),
        time_zone=message.time_zone, language=message.language, do_not_contact=message.do_not_contact,
        do_not_contact_reason=message.do_not_contact_reason, do_not_contact_note=message.do_not_contact_note,
        do_not_contact_until=until,
    )


def preferences_to_proto(preferences: ContactPreferences) -> consent_pb2.ContactPreferences:
    message = consent_pb2.ContactPreferences(
        name=preferences.name, etag=preferences.etag,
        preferred_channels=[consent_pb2.ContactChannel.ValueType(c) for c in preferences.preferred_channels],
        time_zone=preferences.time_zone, language=preferences.language,
        do_not_contact=preferences.do_not_contact,
        do_not_contact_reason=consent_pb2.DoNotContactReason.ValueType(preferences.do_not_contact_reason),
        do_not_contact_note=preferences.do_not_contact_note,
        do_not_contact_time=stamp(preferences.do_not_contact_at),
        do_not_contact_until=from_date(preferences.do_not_contact_until),
        update_time=stamp(preferences.updated_at),
    )
    for window in preferences.contact_windows:
        added = message.contact_windows.add(days=[dayofweek_pb2.DayOfWeek.ValueType(d) for d in window.days])
        if window.start is not None:
            added.start_time.CopyFrom(timeofday_pb2.TimeOfDay(hours=window.start[0], minutes=window.start[1],
                                                              seconds=window.start[2], nanos=window.start[3]))
        if window.end is not None:
            added.end_time.CopyFrom(timeofday_pb2.TimeOfDay(hours=window.end[0], minutes=window.end[1],
                                                            seconds=window.end[2], nanos=window.end[3]))
    return message


class FeedPayloads:
    """Change-feed payloads of consents and preferences; customers as the app's feed shows them."""

    def __init__(self, customer: Callable[[Customer], Message]) -> None:
        self.customer = customer

    def record(self, record: ConsentRecord) -> consent_pb2.ConsentRecord:
        return record_to_proto(record)

    def preferences(self, preferences: ContactPreferences) -> consent_pb2.ContactPreferences:
        return preferences_to_proto(preferences)
