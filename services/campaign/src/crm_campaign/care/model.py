"""Care tasks as the service's code sees them: plain values, no protos."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class CareTaskKind(IntEnum):
    UNSPECIFIED = 0
    OFFER_FOLLOW_UP = 1
    MATURITY_FOLLOW_UP = 2
    BIRTHDAY_GREETING = 3
    ANNIVERSARY_GREETING = 4
    REACTIVATION = 5
    SERVICE_REVIEW = 6
    OTHER = 7


class CareTaskPriority(IntEnum):
    UNSPECIFIED = 0
    LOW = 1
    NORMAL = 2
    HIGH = 3


class CareTaskState(IntEnum):
    UNSPECIFIED = 0
    OPEN = 1
    IN_PROGRESS = 2
    DONE = 3
    CANCELLED = 4


class CareTaskOutcome(IntEnum):
    UNSPECIFIED = 0
    CONTACTED = 1
    NOT_REACHED = 2
    ACCEPTED = 3
    DECLINED = 4
    NOT_NEEDED = 5


# States a task never leaves.
CLOSED = frozenset({CareTaskState.DONE, CareTaskState.CANCELLED})
# Outcomes in which the customer was reached: the completion names the channel.
WITH_CONTACT = frozenset({CareTaskOutcome.CONTACTED, CareTaskOutcome.ACCEPTED, CareTaskOutcome.DECLINED})


@dataclass(frozen=True)
class CareTask:
    care_task_id: str
    customer_id: str
    kind: int
    title: str
    assignee: str
    due_at: datetime | None
    description: str = ""
    priority: int = 0
    state: int = CareTaskState.OPEN
    outcome: int = CareTaskOutcome.UNSPECIFIED
    outcome_note: str = ""
    contact_channel: int = 0
    # `triggerRules/{id}`, `campaigns/{id}/dispatches/{id}` or `renewals/{id}`; "" by hand.
    source: str = ""
    # The offer to present; both "" when the task carries none.
    offer_campaign_id: str = ""
    offer_id: str = ""
    creator: str = ""
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"careTasks/{self.care_task_id}"

    @property
    def etag(self) -> str:
        return str(self.version)


@dataclass(frozen=True)
class Completion:
    outcome: int
    outcome_note: str = ""
    contact_channel: int = 0


@dataclass(frozen=True)
class CareTaskFilter:
    """ListCareTasks' filter; empty `states` means the open ones (OPEN and IN_PROGRESS)."""

    assignee: str = ""
    customer_id: str = ""
    states: tuple[int, ...] = ()
    kind: int = 0
    due_before: datetime | None = None
