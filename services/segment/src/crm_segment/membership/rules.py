"""Pure decisions about membership requests: sample sizes, parents, filters. No I/O."""

from __future__ import annotations

from datetime import datetime

from crm_segment.membership.model import ChangeKind
from crm_segment.segments.rules import SEGMENT_NAME
from crmkit.resources import ResourceName
from crmkit.validation import Violations

MAX_SAMPLE = 50
DEFAULT_SAMPLE = 10
# `segments/-` in ListMembershipChanges: every segment (then a customer is required).
ALL_SEGMENTS = "segments/-"
CUSTOMER_NAME = ResourceName("customers/{customer_id}")


def sample_size(requested: int, violations: Violations) -> int:
    violations.check(0 <= requested <= MAX_SAMPLE, "sample_size",
                     f"must be 0 to {MAX_SAMPLE} (0 means {DEFAULT_SAMPLE})")
    return requested or DEFAULT_SAMPLE


def changes_filter(*, parent: str, customer: str, kind: int, since: datetime | None, until: datetime | None
                   ) -> tuple[str | None, str | None, ChangeKind | None]:
    """(segment id or None for every segment, customer id or None, kind or None); INVALID_ARGUMENT
    naming every bad field."""
    v = Violations()
    segment_id: str | None = None
    if parent != ALL_SEGMENTS and SEGMENT_NAME.check(parent, "parent", v, required=True):
        segment_id = SEGMENT_NAME.id_in(parent)
    customer_id: str | None = None
    if parent == ALL_SEGMENTS:
        v.check(bool(customer), "customer", "is required when parent is segments/-")
    if customer and CUSTOMER_NAME.check(customer, "customer", v):
        customer_id = CUSTOMER_NAME.id_in(customer)
    v.enum(kind, "kind", frozenset({ChangeKind.ENTERED, ChangeKind.LEFT}), "MembershipChangeKind")
    if since is not None and until is not None:
        v.check(since <= until, "change_interval", "must not end before it starts")
    v.raise_if_any()
    return segment_id, customer_id, ChangeKind(kind) if kind else None
