"""The complaint workflow as data: the request each step reads, and the change it makes.

Plain values only; `rules.py` judges them and decides the change, `service.py` stores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_feedback.complaints.model import Compensation, Complaint, Note, Step


@dataclass(frozen=True)
class NoteDraft:
    type: int
    text: str
    contact_channel: int = 0


@dataclass(frozen=True)
class ResolutionDraft:
    outcome: int
    summary: str
    root_cause: str = ""
    compensation: Compensation | None = None
    # A compensation whose amount cannot be read (nanos out of range, sign mismatch).
    compensation_readable: bool = True


@dataclass(frozen=True)
class ComplaintPatch:
    """`UpdateComplaint`: the fields in `paths` take these values."""

    paths: tuple[str, ...]
    category: int = 0
    subcategory: str = ""
    priority: int = 0
    branch_id: str = ""
    related_resources: tuple[str, ...] = ()
    product: str = ""


@dataclass(frozen=True)
class Change:
    """What one step does: the complaint after it, the step recorded, the note it adds (if any)."""

    complaint: Complaint
    step: Step
    note: Note | None = None
