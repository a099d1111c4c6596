"""Pure decisions about complaints: what a valid filing and filter are, who sees what. No I/O here."""

from __future__ import annotations

import dataclasses
import re
import uuid
from datetime import datetime, timedelta

from crm_feedback.complaints.model import (
    PERSONAL_FIELDS,
    Category,
    Channel,
    Complaint,
    ComplaintDraft,
    ComplaintFilter,
    ComplaintView,
    Priority,
    Sla,
    Status,
    TimeRange,
)
from crm_feedback.sla import rules as sla_rules
from crmkit import masking
from crmkit.auth import Principal, Role
from crmkit.errors import PermissionDenied
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName
from crmkit.validation import Violations

CUSTOMER_NAME = ResourceName("customers/{customer_id}", rule=(
    "must be a resource name like customers/{customer_id} (customer_id: 1 to 64 characters from A-Z a-z 0-9 _ -)"))
COMPLAINT_NAME = ResourceName("complaints/{complaint_id}", id_pattern=r"[A-Za-z0-9-]{1,64}")
SUBCATEGORY = re.compile(r"[a-z0-9_]{1,64}")
# A resource name of this or another service: `collection/id[/...]`, no spaces.
RESOURCE_NAME = re.compile(r"[a-z][A-Za-z0-9]*/\S+")

CHANNELS = frozenset(Channel)
CATEGORIES = frozenset(Category)
PRIORITIES = frozenset(Priority)
MAX_DESCRIPTION = 4000
MAX_RELATED_RESOURCES = 10
MAX_RELATED_RESOURCE_LENGTH = 200
MAX_BRANCH_ID = 32
MAX_EMPLOYEE_ID = 64
MAX_ESCALATION_LEVEL = 3
PURPOSE_REQUIRED = "is required: say why the complaint is read, e.g. ACCESS_PURPOSE_COMPLAINT"
# A letter registered the day after it arrived is still filed with its real receive time.
RECEIVE_LOOKBACK = timedelta(hours=72)
# Channel devices' clocks drift a little; a receive time seconds ahead of ours is "now".
CLOCK_SKEW = timedelta(minutes=1)

DEFAULT_ORDERING = "create_time desc"
ORDERINGS = (DEFAULT_ORDERING, "sla.respond_by", "sla.resolve_by", "priority desc")

# Roles that see a complaint's description in clear: they serve the customer, work the
# complaint or audit its handling. Analysts (and the change feed) see it masked.
CLEAR_READERS = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN, Role.AUDITOR})


def customer_id_of(name: str) -> str | None:
    return CUSTOMER_NAME.id_in(name)


def complaint_id_of(name: str) -> str | None:
    return COMPLAINT_NAME.id_in(name)


def complaint_id_for(number: int, filed_at: datetime) -> str:
    """The customer's reference, e.g. `CMP-20260115-000042`: filing date (UTC) and a serial."""
    return f"CMP-{filed_at:%Y%m%d}-{number:06d}"


def request_key(request_id: str, v: Violations, *, field: str = "request_id") -> uuid.UUID | None:
    """The idempotency key of a request that requires one."""
    if not v.check(bool(request_id), field, "is required: a UUID that stays the same when the call is retried"):
        return None
    return parse_request_id(request_id, field, violations=v)


def validate_draft(draft: ComplaintDraft, *, now: datetime, violations: Violations | None = None) -> Violations:
    """Record every rule the filing breaks, each under the field path the caller used."""
    v = violations if violations is not None else Violations()
    if v.check(bool(draft.customer), "complaint.customer", "is required"):
        CUSTOMER_NAME.check(draft.customer, "complaint.customer", v)
    v.enum(draft.channel, "complaint.channel", CHANNELS, "Channel",
           required="is required: the Channel the complaint came through, e.g. CHANNEL_BRANCH")
    description = draft.description.strip()
    if v.check(bool(description), "complaint.description", "is required: the complaint in the customer's words"):
        v.check(len(description) <= MAX_DESCRIPTION, "complaint.description",
                f"must be at most {MAX_DESCRIPTION} characters after trimming")
        v.text(description, "complaint.description", multiline=True)
    v.enum(draft.category, "complaint.category", CATEGORIES, "ComplaintCategory")
    if draft.subcategory:
        v.pattern(draft.subcategory, "complaint.subcategory", SUBCATEGORY,
                  "must be a short code of 1 to 64 characters from a-z 0-9 _, e.g. annual_fee")
    v.enum(draft.priority, "complaint.priority", PRIORITIES, "ComplaintPriority")
    v.max_length(draft.branch_id, "complaint.branch_id", MAX_BRANCH_ID)
    v.text(draft.branch_id, "complaint.branch_id")
    _validate_related_resources(draft.related_resources, v)
    if draft.receive_time is not None:
        v.check(draft.receive_time <= now + CLOCK_SKEW, "complaint.receive_time", "must not be in the future")
        v.check(draft.receive_time >= now - RECEIVE_LOOKBACK, "complaint.receive_time",
                "must be at most 72 hours in the past")
    return v


def _validate_related_resources(names: tuple[str, ...], v: Violations) -> None:
    v.check(len(names) <= MAX_RELATED_RESOURCES, "complaint.related_resources",
            f"must have at most {MAX_RELATED_RESOURCES} entries")
    for i, name in enumerate(names):
        field = f"complaint.related_resources[{i}]"
        if v.max_length(name, field, MAX_RELATED_RESOURCE_LENGTH):
            v.pattern(name, field, RESOURCE_NAME, "must be a resource name like campaigns/{campaign_id}")


def new_complaint(
    draft: ComplaintDraft, *, complaint_id: str, filer: str, now: datetime, policy: sla_rules.SlaPolicy,
) -> Complaint:
    """The complaint a valid draft files: defaults applied, clocks started at receipt.

    Until the text classifier is wired in, an unspecified category becomes OTHER (what the
    contract prescribes for a low-confidence classification).
    """
    received_at = draft.receive_time or now
    deadlines = sla_rules.deadlines(policy, received_at=received_at)
    return Complaint(
        complaint_id=complaint_id,
        customer_id=customer_id_of(draft.customer) or "",
        channel=draft.channel,
        category=draft.category or Category.OTHER,
        subcategory=draft.subcategory,
        priority=draft.priority or Priority.MEDIUM,
        description=draft.description.strip(),
        branch_id=draft.branch_id,
        related_resources=draft.related_resources,
        received_at=received_at,
        sla=Sla(policy=policy.name, respond_by=deadlines.respond_by, resolve_by=deadlines.resolve_by),
        filer=filer,
        status=Status.OPEN,
        created_at=now,
        updated_at=now,
    )


def ordering(order_by: str) -> str:
    return " ".join(order_by.split()) or DEFAULT_ORDERING


def validate_filter(query: ComplaintFilter, *, page_size: int, violations: Violations | None = None) -> Violations:
    v = violations if violations is not None else Violations()
    v.check(page_size >= 0, "page_size", "must not be negative")
    if query.customer:
        CUSTOMER_NAME.check(query.customer, "customer", v)
    for i, status in enumerate(query.statuses):
        v.enum(status, f"statuses[{i}]", frozenset(Status), "ComplaintStatus",
               required="is not a known ComplaintStatus")
    for i, category in enumerate(query.categories):
        v.enum(category, f"categories[{i}]", CATEGORIES, "ComplaintCategory",
               required="is not a known ComplaintCategory")
    for i, priority in enumerate(query.priorities):
        v.enum(priority, f"priorities[{i}]", PRIORITIES, "ComplaintPriority",
               required="is not a known ComplaintPriority")
    v.enum(query.channel, "channel", CHANNELS, "Channel")
    v.max_length(query.assignee, "assignee", MAX_EMPLOYEE_ID)
    v.text(query.assignee, "assignee")
    v.max_length(query.branch_id, "branch_id", MAX_BRANCH_ID)
    v.text(query.branch_id, "branch_id")
    v.check(0 <= query.min_escalation_level <= MAX_ESCALATION_LEVEL, "min_escalation_level", "must be 0 to 3")
    for field, interval in (("receive_interval", query.receive_interval), ("due_interval", query.due_interval)):
        _validate_interval(interval, field, v)
    v.check(ordering(query.order_by) in ORDERINGS, "order_by", f"must be one of: {', '.join(ORDERINGS)}")
    return v


def _validate_interval(interval: TimeRange, field: str, v: Violations) -> None:
    if interval.start is not None and interval.end is not None:
        v.check(interval.start <= interval.end, field, "end_time must not be before start_time")


def check_case(principal: Principal, complaint: Complaint) -> None:
    """A relationship manager (with no broader role) works only the complaints of their book.

    Feedback has no customer-to-manager mapping yet (it arrives with a read model of the profile
    change feed), so until then a manager's book here is the complaints they filed or are
    assigned: narrower than the real book, never wider.
    """
    if principal.is_relationship_manager_only and principal.subject not in (complaint.filer, complaint.assignee):
        raise PermissionDenied("complaint is outside the caller's book", reason="OUTSIDE_BOOK")


def case_handler(principal: Principal) -> str | None:
    """The employee whose cases a list is limited to (see `check_case`), or None for no limit."""
    return principal.subject if principal.is_relationship_manager_only else None


def view_for(principal: Principal, complaint: Complaint, *, now: datetime) -> ComplaintView:
    """The complaint as this caller sees it now: breach flags computed, personal data masked by role."""
    sla = complaint.sla
    respond_breached = sla_rules.is_breached(due=sla.respond_by, stopped_at=sla.responded_at, now=now)
    resolve_breached = sla_rules.is_breached(due=sla.resolve_by, stopped_at=sla.resolved_at, now=now)
    if principal.has_any(CLEAR_READERS):
        return ComplaintView(complaint, respond_breached, resolve_breached)
    masked = dataclasses.replace(complaint, description=masking.mask_text(complaint.description))
    present = tuple(f for f in PERSONAL_FIELDS if getattr(complaint, f))
    return ComplaintView(masked, respond_breached, resolve_breached, present)

