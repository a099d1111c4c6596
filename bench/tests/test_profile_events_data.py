"""The profile-events benchmark measures valid events only: every synthetic event passes the rules."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.harness import REGISTRY
from bench.profile_events import build_batches
from crm.profile.v1 import event_pb2
from crm_profile.api import event_messages
from crm_profile.events import rules


def test_synthetic_events_are_valid_unique_and_of_every_type() -> None:
    payloads = build_batches([f"C{i}" for i in range(50)], events=2_500, batch=1_000, seed=3)
    batches = [event_pb2.IngestEventsRequest.FromString(p).events for p in payloads]
    assert [len(b) for b in batches] == [1_000, 1_000, 500]
    events = [event_messages.to_domain(m) for batch in batches for m in batch]
    now = datetime.now(UTC)
    assert [rules.problem_of(e, now=now, retention=rules.Retention()) for e in events] == [None] * len(events)
    assert len({e.event_id for e in events}) == len(events)
    assert {e.event_type for e in events} == set(rules.EVENT_TYPES)


def test_profile_events_is_registered() -> None:
    assert REGISTRY["profile-events"].module == "bench.profile_events"
