"""Retention as the service's code sees it: policies, the changes an update carries, what a purge
did (enum numbers are the contract's; `api/privacy_messages.py` turns these into protos)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from crm_profile.attributes.model import DataClass


class RetentionAnchor(IntEnum):
    UNSPECIFIED = 0
    RECORD_TIME = 1
    RELATIONSHIP_END = 2


class RetentionAction(IntEnum):
    UNSPECIFIED = 0
    DELETE = 1
    ANONYMISE = 2


@dataclass(frozen=True)
class RetentionPolicy:
    data_class: DataClass
    retention: timedelta
    anchor: RetentionAnchor
    action: RetentionAction
    overrides_erasure: bool = False
    legal_basis: str = ""
    # The legal floor from the service's configuration (not stored with the policy).
    minimum: timedelta = timedelta(0)
    version: int = 0
    updated_at: datetime | None = None
    last_purge_at: datetime | None = None

    @property
    def slug(self) -> str:
        """`special-category` for DATA_CLASS_SPECIAL_CATEGORY: the id in the resource name."""
        return self.data_class.name.lower().replace("_", "-")

    @property
    def name(self) -> str:
        return f"retentionPolicies/{self.slug}"

    @property
    def etag(self) -> str:
        return str(self.version)

    @property
    def effective_retention(self) -> timedelta:
        """What the purge applies: never less than the legal floor, whatever the policy says."""
        return max(self.retention, self.minimum)


@dataclass(frozen=True)
class PolicyChanges:
    """The values an UpdateRetentionPolicy request carries (only those in its mask are used)."""

    retention: timedelta | None = None
    anchor: int = 0
    action: int = 0
    overrides_erasure: bool = False
    legal_basis: str = ""


@dataclass(frozen=True)
class PurgeClassResult:
    data_class: DataClass
    cutoff: datetime
    deleted: int = 0
    anonymised: int = 0


@dataclass(frozen=True)
class PurgeResult:
    classes: tuple[PurgeClassResult, ...]
    validate_only: bool
