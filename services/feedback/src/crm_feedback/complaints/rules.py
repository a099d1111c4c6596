"""Pure decisions about complaints: what a valid filing and filter are, who sees what. No I/O here."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

from crm_feedback.complaints.model import (
    OPEN_STATUSES,
    PERSONAL_FIELDS,
    Action,
    Category,
    Channel,
    CloseReason,
    Complaint,
    ComplaintDraft,
    ComplaintFilter,
    ComplaintView,
    EscalationTrigger,
    Note,
    NoteType,
    Outcome,
    Priority,
    Resolution,
    Sla,
    Status,
    Step,
    TimeRange,
)
from crm_feedback.complaints.workflow import Change, ComplaintPatch, NoteDraft, ResolutionDraft
from crm_feedback.sla import rules as sla_rules
from crm_feedback.sla.clocks import BreachSnapshot
from crmkit import masking
from crmkit.auth import Principal, Role
from crmkit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
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
    validate_product(draft.product, "complaint.product", v)
    _validate_related_resources(draft.related_resources, v)
    if draft.receive_time is not None:
        v.check(draft.receive_time <= now + CLOCK_SKEW, "complaint.receive_time", "must not be in the future")
        v.check(draft.receive_time >= now - RECEIVE_LOOKBACK, "complaint.receive_time",
                "must be at most 72 hours in the past")
    return v


def validate_product(product: str, field: str, v: Violations) -> None:
    if product:
        v.pattern(product, field, SUBCATEGORY, "must be a short code of 1 to 64 characters from a-z 0-9 _, "
                  "e.g. credit_card")


def _validate_related_resources(names: tuple[str, ...], v: Violations) -> None:
    v.check(len(names) <= MAX_RELATED_RESOURCES, "complaint.related_resources",
            f"must have at most {MAX_RELATED_RESOURCES} entries")
    for i, name in enumerate(names):
        field = f"complaint.related_resources[{i}]"
        if v.max_length(name, field, MAX_RELATED_RESOURCE_LENGTH):
            v.pattern(name, field, RESOURCE_NAME, "must be a resource name like campaigns/{campaign_id}")


def triage_of(draft: ComplaintDraft) -> tuple[int, int]:
    """The category and priority a draft is filed under (and so picks its SLA policy by)."""
    return draft.category or Category.OTHER, draft.priority or Priority.MEDIUM


def new_complaint(
    draft: ComplaintDraft, *, complaint_id: str, filer: str, now: datetime, policy: sla_rules.SlaPolicy,
    tier_respond: timedelta | None = None,
) -> Complaint:
    """The complaint a valid draft files: defaults applied, clocks started at receipt.

    Until the text classifier is wired in, an unspecified category becomes OTHER (what the
    contract prescribes for a low-confidence classification).
    """
    received_at = draft.receive_time or now
    deadlines = sla_rules.with_tier(sla_rules.deadlines(policy, received_at=received_at), policy,
                                    received_at=received_at, tier_respond=tier_respond)
    return Complaint(
        complaint_id=complaint_id,
        customer_id=customer_id_of(draft.customer) or "",
        channel=draft.channel,
        category=triage_of(draft)[0],
        subcategory=draft.subcategory,
        priority=triage_of(draft)[1],
        description=draft.description.strip(),
        branch_id=draft.branch_id,
        product=draft.product,
        related_resources=draft.related_resources,
        received_at=received_at,
        sla=Sla(policy=policy.name, respond_by=deadlines.respond_by, resolve_by=deadlines.resolve_by,
                respond_escalate_at=deadlines.respond_escalate_at, resolve_escalate_at=deadlines.resolve_escalate_at,
                escalate_on_breach=policy.escalate_on_breach),
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

    Profile decides the book by the customer's `relationship_manager_id` (customers/rules.check_book);
    feedback learns it from profile's feed (`known_customer`) and keeps it on the complaint as
    `customer_manager`. A manager's book is the complaints of their customers, plus those they
    filed or are assigned. Without the read model (or before it knows the customer) only the latter:
    narrower than the real book, never wider. It applies to every read and every workflow step.
    """
    allowed = (complaint.filer, complaint.assignee, complaint.customer_manager or complaint.filer)
    if principal.is_relationship_manager_only and principal.subject not in allowed:
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
    resolution = complaint.resolution
    present = tuple(f for f, value in zip(PERSONAL_FIELDS, (
        complaint.description, resolution and resolution.summary, any(n.text for n in complaint.notes)), strict=True)
        if value)
    masked = dataclasses.replace(
        complaint, description=masking.mask_text(complaint.description),
        resolution=resolution and dataclasses.replace(resolution, summary=masking.mask_text(resolution.summary)),
        notes=tuple(dataclasses.replace(n, text=masking.mask_text(n.text)) for n in complaint.notes))
    return ComplaintView(masked, respond_breached, resolve_breached, present)


# --- the workflow -------------------------------------------------------------------------

_OPEN = tuple(sorted(OPEN_STATUSES))
# The state machine: for each step, the statuses it may start from and the status it leaves.
# Two refinements sit beside it: an acknowledged complaint that already has an assignee is
# IN_PROGRESS (`_settle`), and a close reason narrows the statuses a close may start from
# (`CLOSE_FROM`).
TRANSITIONS: Mapping[Action, Mapping[Status, Status]] = {
    Action.UPDATED: {s: s for s in _OPEN},
    Action.ASSIGNED: {Status.OPEN: Status.OPEN, Status.ACKNOWLEDGED: Status.IN_PROGRESS,
                      Status.IN_PROGRESS: Status.IN_PROGRESS, Status.REOPENED: Status.IN_PROGRESS},
    Action.ACKNOWLEDGED: {Status.OPEN: Status.ACKNOWLEDGED},
    Action.NOTE_ADDED: {s: s for s in Status},
    Action.ESCALATED: {s: s for s in _OPEN},
    Action.RESOLVED: {s: Status.RESOLVED for s in _OPEN},
    Action.CLOSED: {s: Status.CLOSED for s in (*_OPEN, Status.RESOLVED)},
    Action.REOPENED: {Status.RESOLVED: Status.REOPENED, Status.CLOSED: Status.REOPENED},
}
CLOSE_FROM: Mapping[CloseReason, frozenset[Status]] = {
    CloseReason.CUSTOMER_CONFIRMED: frozenset({Status.RESOLVED}),
    CloseReason.NO_CUSTOMER_REPLY: frozenset({Status.RESOLVED}),
    CloseReason.WITHDRAWN: OPEN_STATUSES,
    CloseReason.DUPLICATE: OPEN_STATUSES,
}
# A complaint withdrawn or closed as a duplicate stays closed: there is nothing to reopen.
NOT_REOPENABLE = frozenset({CloseReason.WITHDRAWN, CloseReason.DUPLICATE})
REOPEN_PERIOD = timedelta(days=90)
MAX_NOTES = 500
MAX_NOTE = 4000
MAX_REASON = 1000
UPDATABLE = ("category", "subcategory", "priority", "branch_id", "related_resources", "product")
SYSTEM_SLA = "system:sla"


def next_status(action: Action, complaint: Complaint, *, close_reason: int = 0) -> Status:
    """The status `action` leaves the complaint in; FAILED_PRECONDITION `INVALID_TRANSITION` when the
    table does not allow it from the complaint's status."""
    current = Status(complaint.status)
    target = TRANSITIONS[action].get(current)
    if action is Action.CLOSED and close_reason in CLOSE_FROM and current not in CLOSE_FROM[CloseReason(close_reason)]:
        target = None
    if target is None:
        wanted = _nominal_target(action)
        raise FailedPrecondition(
            f"cannot {action.name.lower()} a complaint that is {current.name}: {current.name} -> {wanted.name} "
            "is not an allowed transition", reason="INVALID_TRANSITION",
            metadata={"action": action.name, "from_status": f"COMPLAINT_STATUS_{current.name}",
                      "to_status": f"COMPLAINT_STATUS_{wanted.name}"})
    return _settle(target, complaint)


def _nominal_target(action: Action) -> Status:
    return next(iter(TRANSITIONS[action].values()), Status.OPEN)


def _settle(target: Status, complaint: Complaint) -> Status:
    if target is Status.ACKNOWLEDGED and complaint.assignee:
        return Status.IN_PROGRESS
    return target


def check_workable(action: Action, actor: Principal, complaint: Complaint, *, close_reason: int = 0) -> None:
    """Everything that refuses a step before its etag is compared: the book, then the transition."""
    check_case(actor, complaint)
    next_status(action, complaint, close_reason=close_reason)
    if action is Action.ESCALATED and complaint.escalation_level >= MAX_ESCALATION_LEVEL:
        raise FailedPrecondition("the complaint is already escalated to the highest level (3)",
                                 reason="ESCALATION_LEVEL_MAX")


def check_reopenable(complaint: Complaint, *, now: datetime) -> None:
    if complaint.status != Status.CLOSED:
        return
    if complaint.close_reason in NOT_REOPENABLE:
        raise FailedPrecondition(f"a complaint closed as {CloseReason(complaint.close_reason).name} cannot be reopened",
                                 reason="NOT_REOPENABLE")
    if complaint.closed_at is not None and now - complaint.closed_at >= REOPEN_PERIOD:
        raise FailedPrecondition("the complaint was closed more than 90 days ago", reason="REOPEN_PERIOD_OVER")


def target_key(name: str, request_id: str, v: Violations, *, field: str = "name") -> tuple[str, uuid.UUID | None]:
    """The complaint id a step names and its optional idempotency key, violations recorded in `v`."""
    COMPLAINT_NAME.check(name, field, v, required=True)
    return complaint_id_of(name) or "", parse_request_id(request_id, violations=v)


def _free_text(value: str, field: str, v: Violations, *, limit: int, required: bool = False,
               rule: str = "is required") -> None:
    text = value.strip()
    if not text:
        v.check(not required, field, rule)
        return
    v.check(len(text) <= limit, field, f"must be at most {limit} characters after trimming")
    v.text(text, field, multiline=True)


def _employee(value: str, field: str, v: Violations, *, required: bool) -> None:
    if required and not v.check(bool(value), field, "is required: the employee id to hand the complaint to"):
        return
    v.max_length(value, field, MAX_EMPLOYEE_ID)
    v.text(value, field)


def validate_assign(*, assignee: str, note: str, v: Violations) -> None:
    _employee(assignee, "assignee", v, required=True)
    _free_text(note, "note", v, limit=MAX_REASON)


def validate_acknowledge(*, response_channel: int, note: str, v: Violations) -> None:
    v.enum(response_channel, "response_channel", CHANNELS, "Channel",
           required="is required: the Channel the customer was answered through")
    _free_text(note, "note", v, limit=MAX_NOTE)


def validate_note(note: NoteDraft, v: Violations, *, field: str = "note") -> None:
    v.enum(note.type, f"{field}.type", frozenset(NoteType), "NoteType",
           required="is required: NOTE_TYPE_INTERNAL or NOTE_TYPE_CUSTOMER_CONTACT")
    _free_text(note.text, f"{field}.text", v, limit=MAX_NOTE, required=True)
    if note.type == NoteType.CUSTOMER_CONTACT:
        v.enum(note.contact_channel, f"{field}.contact_channel", CHANNELS, "Channel",
               required="is required for a customer-contact note: the Channel the customer was contacted on")
    else:
        v.check(note.contact_channel == 0, f"{field}.contact_channel",
                "must be unspecified unless the note type is NOTE_TYPE_CUSTOMER_CONTACT")


def validate_escalate(*, reason: str, assignee: str, v: Violations) -> None:
    _free_text(reason, "reason", v, limit=MAX_REASON, required=True, rule="is required: why the complaint is escalated")
    _employee(assignee, "assignee", v, required=False)


def validate_resolve(resolution: ResolutionDraft, v: Violations) -> None:
    v.enum(resolution.outcome, "resolution.outcome", frozenset(Outcome), "ResolutionOutcome",
           required="is required: whether the complaint was upheld")
    _free_text(resolution.summary, "resolution.summary", v, limit=MAX_NOTE, required=True,
               rule="is required: a resolution note saying what was found and done, as told to the customer")
    if resolution.root_cause:
        v.pattern(resolution.root_cause, "resolution.root_cause", SUBCATEGORY,
                  "must be a short code of 1 to 64 characters from a-z 0-9 _, e.g. staff_training")
    v.check(resolution.compensation_readable, "resolution.compensation",
            "must be a valid Money: nanos from -999999999 to 999999999 with the sign of units")
    money = resolution.compensation
    if money is not None:
        v.check(money.amount >= 0, "resolution.compensation", "must not be negative")
        v.check(bool(re.fullmatch(r"[A-Z]{3}", money.currency_code)), "resolution.compensation.currency_code",
                "is required: an ISO 4217 code such as CNY")


def validate_close(*, reason: int, duplicate_of: str, note: str, complaint_id: str, v: Violations) -> None:
    v.enum(reason, "reason", frozenset(CloseReason), "CloseReason", required="is required: why the complaint is closed")
    if reason == CloseReason.DUPLICATE:
        if COMPLAINT_NAME.check(duplicate_of, "duplicate_of", v, required=True):
            v.check(complaint_id_of(duplicate_of) != complaint_id, "duplicate_of", "must name another complaint")
    else:
        v.check(not duplicate_of, "duplicate_of", "must be empty unless reason is CLOSE_REASON_DUPLICATE")
    _free_text(note, "note", v, limit=MAX_REASON)


def validate_reopen(*, reason: str, v: Violations) -> None:
    _free_text(reason, "reason", v, limit=MAX_REASON, required=True,
               rule="is required: what the customer is still unhappy about")


def validate_patch(patch: ComplaintPatch, v: Violations) -> None:
    v.update_mask(patch.paths, UPDATABLE)
    paths = set(patch.paths)
    if "category" in paths:
        v.enum(patch.category, "complaint.category", CATEGORIES, "ComplaintCategory",
               required="must not be unspecified when updated")
    if "priority" in paths:
        v.enum(patch.priority, "complaint.priority", PRIORITIES, "ComplaintPriority",
               required="must not be unspecified when updated")
    if "subcategory" in paths and patch.subcategory:
        v.pattern(patch.subcategory, "complaint.subcategory", SUBCATEGORY,
                  "must be a short code of 1 to 64 characters from a-z 0-9 _, e.g. annual_fee")
    if "branch_id" in paths:
        v.max_length(patch.branch_id, "complaint.branch_id", MAX_BRANCH_ID)
        v.text(patch.branch_id, "complaint.branch_id")
    if "related_resources" in paths:
        _validate_related_resources(patch.related_resources, v)
    if "product" in paths:
        validate_product(patch.product, "complaint.product", v)


def check_duplicate(complaint: Complaint, original: Complaint | None) -> None:
    """A duplicate must point at another complaint of the same customer that is not itself a duplicate."""
    if original is None:
        raise NotFound("the complaint named in duplicate_of does not exist", reason="COMPLAINT_NOT_FOUND")
    if original.customer_id != complaint.customer_id:
        raise InvalidArgument([FieldViolation("duplicate_of", "must be a complaint of the same customer")])
    if original.close_reason == CloseReason.DUPLICATE:
        raise InvalidArgument([FieldViolation("duplicate_of", "must not itself be closed as a duplicate")])


def _step(complaint: Complaint, after: Complaint, action: Action, *, actor: str, now: datetime,
          note: Note | None, trigger: int = 0) -> Change:
    after = dataclasses.replace(after, version=complaint.version + 1, updated_at=now)
    step = Step(action=action, from_status=complaint.status, to_status=after.status, actor=actor, occurred_at=now,
                assignee=after.assignee, escalation_level=after.escalation_level,
                note_id=note.note_id if note else None, escalation_trigger=trigger)
    return Change(after, step, note)


def _note(text: str, *, note_id: int, actor: str, now: datetime, type: int = NoteType.INTERNAL,
          channel: int = 0) -> Note | None:
    text = text.strip()
    return Note(note_id, type, text, actor, now, channel) if text else None


def assign(complaint: Complaint, *, assignee: str, note: str, actor: str, now: datetime, note_id: int) -> Change:
    status = next_status(Action.ASSIGNED, complaint)
    after = dataclasses.replace(complaint, assignee=assignee, status=status)
    return _step(complaint, after, Action.ASSIGNED, actor=actor, now=now,
                 note=_note(note, note_id=note_id, actor=actor, now=now))


def acknowledge(complaint: Complaint, *, response_channel: int, note: str, actor: str, now: datetime,
                note_id: int) -> Change:
    """The first response: the respond clock stops now."""
    status = next_status(Action.ACKNOWLEDGED, complaint)
    sla = dataclasses.replace(complaint.sla, responded_at=complaint.sla.responded_at or now)
    after = dataclasses.replace(complaint, status=status, sla=sla)
    return _step(complaint, after, Action.ACKNOWLEDGED, actor=actor, now=now,
                 note=_note(note, note_id=note_id, actor=actor, now=now, type=NoteType.CUSTOMER_CONTACT,
                            channel=response_channel))


def add_note(complaint: Complaint, *, note: NoteDraft, actor: str, now: datetime, note_id: int) -> Change:
    next_status(Action.NOTE_ADDED, complaint)
    if note_id > MAX_NOTES:
        raise ResourceExhausted(f"a complaint holds at most {MAX_NOTES} notes", reason="TOO_MANY_NOTES")
    added = _note(note.text, note_id=note_id, actor=actor, now=now, type=note.type, channel=note.contact_channel)
    return _step(complaint, complaint, Action.NOTE_ADDED, actor=actor, now=now, note=added)


def escalate(complaint: Complaint, *, reason: str, assignee: str, actor: str, now: datetime, note_id: int,
             trigger: EscalationTrigger = EscalationTrigger.MANUAL) -> Change:
    status = next_status(Action.ESCALATED, complaint)
    after = dataclasses.replace(complaint, status=status, assignee=assignee or complaint.assignee,
                                escalation_level=complaint.escalation_level + 1)
    return _step(complaint, after, Action.ESCALATED, actor=actor, now=now,
                 note=_note(reason, note_id=note_id, actor=actor, now=now), trigger=trigger)


def escalate_by_clock(complaint: Complaint, events: list[sla_rules.Due], *, now: datetime,
                      note_id: int) -> Change | None:
    """The clock worker's escalation: one level for all the events due at once (a complaint whose
    two clocks breach together goes up one level, not two), noting which clocks; None when no event
    escalates (the policy does not escalate on breach) or the complaint is at the highest level.
    The events are recorded either way."""
    escalating = [e for e in events if e.escalates]
    if (not escalating or complaint.escalation_level >= MAX_ESCALATION_LEVEL
            or complaint.status not in OPEN_STATUSES):
        return None
    breach = any(e.event is sla_rules.ClockEvent.BREACH for e in escalating)
    return escalate(complaint, reason=sla_rules.escalation_reason(escalating), assignee="", actor=SYSTEM_SLA,
                    now=now, note_id=note_id,
                    trigger=EscalationTrigger.BREACH if breach else EscalationTrigger.BEFORE_BREACH)


def clock_states(complaint: Complaint) -> list[sla_rules.ClockState]:
    """The complaint's two current clocks as its workflow leaves them. A complaint closed without an
    answer (withdrawn, duplicate) stops its running clocks as cancelled."""
    c, sla = complaint, complaint.sla
    closed_unanswered = c.status == Status.CLOSED and c.close_reason in NOT_REOPENABLE
    cancel_at = c.closed_at if closed_unanswered else None

    def state(clock: sla_rules.SlaClock, cycle: int, started_at: datetime, due_at: datetime,
              escalate_at: datetime | None, stopped_at: datetime | None) -> sla_rules.ClockState:
        return sla_rules.ClockState(
            complaint_id=c.complaint_id, clock=clock, cycle=cycle, started_at=started_at, due_at=due_at,
            escalate_at=escalate_at, escalate_on_breach=sla.escalate_on_breach, sla_policy=sla.policy,
            stopped_at=stopped_at or cancel_at, cancelled=stopped_at is None and cancel_at is not None)

    resolve_started = c.received_at if c.reopen_count == 0 else (c.updated_at or c.received_at)
    return [state(sla_rules.SlaClock.RESPOND, 0, c.received_at, sla.respond_by, sla.respond_escalate_at,
                  sla.responded_at),
            state(sla_rules.SlaClock.RESOLVE, c.reopen_count, resolve_started, sla.resolve_by,
                  sla.resolve_escalate_at, sla.resolved_at)]


def snapshot(complaint: Complaint) -> BreachSnapshot:
    return BreachSnapshot(category=complaint.category, priority=complaint.priority, branch_id=complaint.branch_id,
                          assignee=complaint.assignee, escalation_level=complaint.escalation_level)


def resolve(complaint: Complaint, *, resolution: ResolutionDraft, actor: str, now: datetime) -> Change:
    """Both clocks stop now (the respond clock only if still running)."""
    status = next_status(Action.RESOLVED, complaint)
    sla = dataclasses.replace(complaint.sla, responded_at=complaint.sla.responded_at or now, resolved_at=now)
    resolved = Resolution(outcome=resolution.outcome, summary=resolution.summary.strip(), resolver=actor,
                          resolved_at=now, root_cause=resolution.root_cause, compensation=resolution.compensation)
    after = dataclasses.replace(complaint, status=status, sla=sla, resolution=resolved)
    return _step(complaint, after, Action.RESOLVED, actor=actor, now=now, note=None)


def close(complaint: Complaint, *, reason: int, duplicate_of: str, note: str, actor: str, now: datetime,
          note_id: int) -> Change:
    status = next_status(Action.CLOSED, complaint, close_reason=reason)
    after = dataclasses.replace(complaint, status=status, close_reason=reason, duplicate_of=duplicate_of,
                                closed_at=now)
    return _step(complaint, after, Action.CLOSED, actor=actor, now=now,
                 note=_note(note, note_id=note_id, actor=actor, now=now))


def reopen(complaint: Complaint, *, reason: str, actor: str, now: datetime, note_id: int,
           policy: sla_rules.SlaPolicy) -> Change:
    """A new resolve clock from now under `policy`; the respond clock stays as it was."""
    status = next_status(Action.REOPENED, complaint)
    check_reopenable(complaint, now=now)
    resolve_by, resolve_escalate_at = sla_rules.clock_deadline(policy, start=now, target=policy.resolve)
    sla = dataclasses.replace(complaint.sla, policy=policy.name, resolve_by=resolve_by,
                              resolve_escalate_at=resolve_escalate_at, resolved_at=None,
                              escalate_on_breach=policy.escalate_on_breach)
    after = dataclasses.replace(complaint, status=status, sla=sla, close_reason=0, duplicate_of="", closed_at=None,
                                reopen_count=complaint.reopen_count + 1)
    return _step(complaint, after, Action.REOPENED, actor=actor, now=now,
                 note=_note(reason, note_id=note_id, actor=actor, now=now))


def update(complaint: Complaint, *, patch: ComplaintPatch, actor: str, now: datetime,
           policy: sla_rules.SlaPolicy) -> Change:
    """Re-triage; running clocks take `policy`'s deadlines from receipt, but never later ones."""
    status = next_status(Action.UPDATED, complaint)
    values = {path: getattr(patch, path) for path in patch.paths}
    after = dataclasses.replace(complaint, status=status, **values)
    fresh = sla_rules.deadlines(policy, received_at=complaint.received_at)
    sla = complaint.sla
    if sla.responded_at is None:
        sla = dataclasses.replace(sla, respond_by=min(sla.respond_by, fresh.respond_by),
                                  respond_escalate_at=_earliest(sla.respond_escalate_at, fresh.respond_escalate_at))
    if sla.resolved_at is None and complaint.reopen_count == 0:
        sla = dataclasses.replace(sla, resolve_by=min(sla.resolve_by, fresh.resolve_by),
                                  resolve_escalate_at=_earliest(sla.resolve_escalate_at, fresh.resolve_escalate_at))
    sla = dataclasses.replace(sla, policy=policy.name,
                              escalate_on_breach=sla.escalate_on_breach or policy.escalate_on_breach)
    after = dataclasses.replace(after, sla=sla)
    return _step(complaint, after, Action.UPDATED, actor=actor, now=now, note=None)


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None
