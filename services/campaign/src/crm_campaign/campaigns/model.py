"""Campaigns as the service's code sees them: plain values, no protos.

Enum numbers mirror the contract (`crm.campaign.v1`), so `api/` converts by value. Values that
come straight from a request (type, channels, strategy) stay plain ints until `rules.validate`
has judged them; the state is only ever set by the service, so it is always a `CampaignState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import IntEnum, StrEnum


class CampaignType(IntEnum):
    UNSPECIFIED = 0
    BATCH = 1
    TRIGGERED = 2
    INBOUND = 3


class CampaignState(IntEnum):
    UNSPECIFIED = 0
    DRAFT = 1
    PENDING_APPROVAL = 2
    APPROVED = 3
    SCHEDULED = 4
    RUNNING = 5
    PAUSED = 6
    COMPLETED = 7
    CANCELLED = 8


class Channel(IntEnum):
    UNSPECIFIED = 0
    BRANCH_COUNTER = 1
    MOBILE_APP = 2
    WEB = 3
    WECHAT = 4
    SMS = 5
    EMAIL = 6
    CALL_CENTRE = 7
    RM_VISIT = 8


class DayOfWeek(IntEnum):
    """google.type.DayOfWeek, for quiet days."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


class ChannelStrategy(IntEnum):
    UNSPECIFIED = 0
    PREFERENCE_AND_RESPONSE = 1
    FIXED_ORDER = 2


class FrequencyCapScope(IntEnum):
    UNSPECIFIED = 0
    CAMPAIGN = 1
    ALL_CAMPAIGNS = 2


class ApprovalOutcome(IntEnum):
    APPROVED = 1
    REJECTED = 2


class Action(StrEnum):
    """The lifecycle verbs, one per custom method."""

    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    SCHEDULE = "schedule"
    LAUNCH = "launch"
    PAUSE = "pause"
    RESUME = "resume"
    COMPLETE = "complete"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Money:
    """An amount in a currency (google.type.Money without its float pitfalls)."""

    currency_code: str
    amount: Decimal


@dataclass(frozen=True)
class Interval:
    """A time range; either end may be open (None). Start inclusive, end exclusive."""

    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class TimeOfDay:
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    nanos: int = 0


@dataclass(frozen=True)
class FrequencyCap:
    max_contacts: int
    period: timedelta | None
    channel: int = 0
    scope: int = 0


@dataclass(frozen=True)
class QuietHours:
    start: TimeOfDay | None
    end: TimeOfDay | None
    quiet_days: tuple[int, ...] = ()
    time_zone: str = ""


@dataclass(frozen=True)
class ContactPolicy:
    channels: tuple[int, ...] = ()
    channel_strategy: int = 0
    frequency_caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class ControlGroup:
    # Percentage held out, 0 to 50 with at most two decimals; 0 means no control group.
    holdout_percentage: Decimal = Decimal(0)


@dataclass(frozen=True)
class ChannelCost:
    channel: int
    cost_per_contact: Money | None


@dataclass(frozen=True)
class Transition:
    """One lifecycle step, as recorded: who moved the campaign from which state to which, and why."""

    action: Action
    from_state: CampaignState
    to_state: CampaignState
    actor: str
    comment: str = ""
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ApprovalDecision:
    reviewer: str
    outcome: ApprovalOutcome
    comment: str
    decided_at: datetime | None


@dataclass
class Campaign:
    campaign_id: str
    display_name: str
    type: int
    description: str = ""
    state: CampaignState = CampaignState.DRAFT
    segment: str = ""
    active_period: Interval = field(default_factory=Interval)
    contact_policy: ContactPolicy = field(default_factory=ContactPolicy)
    control_group: ControlGroup = field(default_factory=ControlGroup)
    # Seed of the random hold-out, drawn at creation: the control split is reproducible from it.
    control_seed: int = 0
    max_contacts: int = 0
    # None means the default window (30 days).
    attribution_window: timedelta | None = None
    fixed_cost: Money | None = None
    channel_costs: tuple[ChannelCost, ...] = ()
    creator: str = ""
    submitter: str = ""
    approval_history: tuple[ApprovalDecision, ...] = ()
    state_reason: str = ""
    scheduled_launch_at: datetime | None = None
    launched_at: datetime | None = None
    closed_at: datetime | None = None
    audience_operation: str = ""
    target_count: int = 0
    control_count: int = 0
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"campaigns/{self.campaign_id}"

    @property
    def etag(self) -> str:
        return str(self.version)
