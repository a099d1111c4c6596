"""Pure decisions about care tasks: what a valid task, change and completion are, who may see and
assign which task, and the personal-data screen for free text. No I/O here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from crm_campaign import field_masks
from crm_campaign.campaigns import rules as campaign_rules
from crm_campaign.care.model import (
    CLOSED,
    WITH_CONTACT,
    CareTask,
    CareTaskFilter,
    CareTaskKind,
    CareTaskOutcome,
    CareTaskPriority,
    CareTaskState,
    Completion,
)
from crmkit.auth import Principal
from crmkit.errors import FailedPrecondition, PermissionDenied
from crmkit.validation import Violations

MAX_TITLE = 200
MAX_TEXT = 2000
MAX_ASSIGNEE = 64
# How far ahead a task may be due; the contract's "not more than 366 days ahead".
MAX_DUE_AHEAD = timedelta(days=366)
# Clocks of callers drift: a due time this little in the past is still "now".
CLOCK_SKEW = timedelta(minutes=5)
# An employee id (a JWT subject), or a branch team's queue.
ASSIGNEE = re.compile(r"[A-Za-z0-9._@-]{1,64}|branch:[A-Za-z0-9_-]{1,32}")
ASSIGNEE_RULE = "must be an employee id (1 to 64 characters from A-Z a-z 0-9 . _ @ -) or branch:{branch_id}"

KINDS = frozenset(CareTaskKind) - {CareTaskKind.UNSPECIFIED}
PRIORITIES = frozenset(CareTaskPriority) - {CareTaskPriority.UNSPECIFIED}
STATES = frozenset(CareTaskState) - {CareTaskState.UNSPECIFIED}
OUTCOMES = frozenset(CareTaskOutcome) - {CareTaskOutcome.UNSPECIFIED}
# What UpdateCareTask may set `state` to; DONE only through CompleteCareTask.
SETTABLE_STATES = frozenset({CareTaskState.IN_PROGRESS, CareTaskState.CANCELLED})
OPEN_STATES = (int(CareTaskState.OPEN), int(CareTaskState.IN_PROGRESS))

UPDATABLE_PATHS = frozenset({"title", "description", "assignee", "priority", "due_time", "state"})

# The personal data free text must not carry (the task links to the customer instead). A screen,
# not a proof: it catches the usual forms, named in the violation without echoing the value.
_PERSONAL_DATA = (
    ("an e-mail address", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    # Identity-card, account and card numbers, and phone numbers written without separators.
    ("an identity, account or phone number", re.compile(r"\d{8,}")),
    ("a phone number", re.compile(
        r"\+\d{1,3}[ -]?\d[\d -]{6,}\d"  # international form
        r"|(?<!\d)1[3-9]\d[ -]\d{4}[ -]?\d{4}(?!\d)"  # mainland mobile with separators
        r"|(?<!\d)0\d{2,3}-\d{7,8}(?!\d)")),  # landline with area code
    ("a postal address", re.compile(
        r"[\u4e00-\u9fff]{1,12}(?:路|街|大道|巷|弄)\d+号"
        r"|\d+\s*(?:号楼|室|栋)"
        r"|\b\d+[A-Za-z]?\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Boulevard|Blvd|Drive|Dr)"
        r"\b")),
)


def personal_data_in(text: str) -> str | None:
    """What kind of personal data `text` appears to hold ("an e-mail address", ...), or None."""
    for kind, pattern in _PERSONAL_DATA:
        if pattern.search(text):
            return kind
    return None


def _free_text(value: str, field: str, limit: int, v: Violations, *, multiline: bool) -> None:
    if v.max_length(value, field, limit) and v.text(value, field, multiline=multiline):
        found = personal_data_in(value)
        v.check(found is None, field, f"must not contain personal data (it appears to hold {found}); "
                                      "the task links to the customer instead")


def _title(value: str, field: str, v: Violations) -> None:
    if v.required(value, field):
        _free_text(value, field, MAX_TITLE, v, multiline=False)


def _assignee(value: str, field: str, v: Violations) -> None:
    if v.required(value, field):
        v.pattern(value, field, ASSIGNEE, ASSIGNEE_RULE)


def _due(due_at: datetime | None, field: str, now: datetime, v: Violations) -> None:
    if v.check(due_at is not None, field, "is required") and due_at is not None:
        v.check(due_at >= now - CLOCK_SKEW, field, "must not be in the past")
        v.check(due_at <= now + MAX_DUE_AHEAD, field, "must not be more than 366 days ahead")


def validate_new(task: CareTask, *, now: datetime, v: Violations, prefix: str = "care_task.") -> Violations:
    """Every rule a new task breaks, each under its request path (`customer` and `offer` are
    read, and checked, by the caller's mapping)."""
    p = prefix
    v.required(task.customer_id, f"{p}customer")
    v.enum(task.kind, f"{p}kind", KINDS, "CareTaskKind", required=True)
    _title(task.title, f"{p}title", v)
    _free_text(task.description, f"{p}description", MAX_TEXT, v, multiline=True)
    _assignee(task.assignee, f"{p}assignee", v)
    v.enum(task.priority, f"{p}priority", PRIORITIES, "CareTaskPriority")
    _due(task.due_at, f"{p}due_time", now, v)
    return v


def check_mask(paths: Sequence[str], v: Violations) -> None:
    v.update_mask(paths, UPDATABLE_PATHS)


def validate_changes(changes: CareTask, paths: Iterable[str], *, now: datetime, v: Violations,
                     prefix: str = "care_task.") -> Violations:
    """The new values of the named fields (each replaces the stored one whole)."""
    p = prefix
    named = set(paths)
    if "title" in named:
        _title(changes.title, f"{p}title", v)
    if "description" in named:
        _free_text(changes.description, f"{p}description", MAX_TEXT, v, multiline=True)
    if "assignee" in named:
        _assignee(changes.assignee, f"{p}assignee", v)
    if "priority" in named:
        v.enum(changes.priority, f"{p}priority", PRIORITIES, "CareTaskPriority")
    if "due_time" in named:
        _due(changes.due_at, f"{p}due_time", now, v)
    if "state" in named:
        v.check(changes.state in SETTABLE_STATES, f"{p}state",
                "can be set to CARE_TASK_STATE_IN_PROGRESS or CARE_TASK_STATE_CANCELLED only "
                "(CompleteCareTask makes a task DONE)")
    return v


def validate_completion(completion: Completion, v: Violations) -> Violations:
    if v.enum(completion.outcome, "outcome", OUTCOMES, "CareTaskOutcome", required=True):
        if completion.outcome in WITH_CONTACT:
            v.enum(completion.contact_channel, "contact_channel", campaign_rules.CHANNELS, "Channel",
                   required="is required when the outcome is a contact (contacted, accepted or declined)")
        else:
            v.check(completion.contact_channel == 0, "contact_channel",
                    "must be unset when the customer was not contacted")
    _free_text(completion.outcome_note, "outcome_note", MAX_TEXT, v, multiline=True)
    return v


def validate_filter(query: CareTaskFilter, v: Violations) -> Violations:
    if query.assignee:
        v.pattern(query.assignee, "assignee", ASSIGNEE, ASSIGNEE_RULE)
    for index, state in enumerate(query.states):
        v.enum(state, f"states[{index}]", STATES, "CareTaskState", required=True)
    v.enum(query.kind, "kind", KINDS, "CareTaskKind")
    return v


def normalise(task: CareTask) -> CareTask:
    return dataclasses.replace(task, title=" ".join(task.title.split()), description=task.description.strip(),
                               priority=task.priority or CareTaskPriority.NORMAL)


# Mask paths are the proto's; the one field whose domain name differs.
_DOMAIN_PATH = {"due_time": "due_at"}


def apply(current: CareTask, changes: CareTask, paths: Iterable[str], *, now: datetime) -> CareTask:
    """`current` with the named fields replaced; a cancellation closes the task."""
    merged = normalise(field_masks.apply_paths(current, changes, [_DOMAIN_PATH.get(p, p) for p in paths]))
    if merged.state == CareTaskState.CANCELLED and current.state != CareTaskState.CANCELLED:
        merged = dataclasses.replace(merged, closed_at=now)
    return merged


def complete(task: CareTask, completion: Completion, *, now: datetime) -> CareTask:
    return dataclasses.replace(task, state=CareTaskState.DONE, outcome=completion.outcome,
                               outcome_note=completion.outcome_note.strip(),
                               contact_channel=completion.contact_channel, closed_at=now)


# --- preconditions ----------------------------------------------------------------------------

def check_open(task: CareTask) -> None:
    if task.state in CLOSED:
        state = CareTaskState(task.state).name
        raise FailedPrecondition(f"care task {task.care_task_id} is {state}: it changes no more",
                                 reason="CARE_TASK_CLOSED", metadata={"state": state})


def check_deletable(task: CareTask) -> None:
    """Only tasks made by hand by mistake are deleted; automatic ones are cancelled, done ones kept."""
    if task.source:
        raise FailedPrecondition(f"care task {task.care_task_id} was created by {task.source}: cancel it instead",
                                 reason="CARE_TASK_AUTOMATIC", metadata={"source": task.source})
    if task.state == CareTaskState.DONE:
        raise FailedPrecondition(f"care task {task.care_task_id} is DONE: its record is kept",
                                 reason="CARE_TASK_CLOSED", metadata={"state": "DONE"})


# --- who may see and assign what --------------------------------------------------------------

def check_assigned(actor: Principal, task: CareTask) -> None:
    """A relationship manager works only the tasks assigned to them."""
    if actor.is_relationship_manager_only and task.assignee != actor.subject:
        raise PermissionDenied(f"care task {task.care_task_id} is not assigned to you", reason="NOT_ASSIGNED",
                               metadata={"care_task": task.name})


def check_may_assign(actor: Principal, assignee: str) -> None:
    """A relationship manager assigns tasks only to themselves."""
    if actor.is_relationship_manager_only and assignee != actor.subject:
        raise PermissionDenied("a relationship manager may assign care tasks only to themselves",
                               reason="ASSIGN_TO_SELF_ONLY")


def scoped(actor: Principal, query: CareTaskFilter) -> CareTaskFilter:
    """The filter as run: a relationship manager's lists hold their own tasks, whatever they asked."""
    if actor.is_relationship_manager_only:
        return dataclasses.replace(query, assignee=actor.subject)
    return query


def listed_states(query: CareTaskFilter) -> tuple[int, ...]:
    return tuple(sorted(set(query.states))) if query.states else OPEN_STATES
