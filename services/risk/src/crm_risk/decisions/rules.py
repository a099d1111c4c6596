"""Pure parts of the decision audit: the inputs' canonical hash and the list request's checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

from crm_risk.decisions.model import DecisionType
from crmkit.validation import Violations

MAX_CONTEXT = 200


def inputs_sha256(inputs: Mapping[str, float]) -> str:
    """SHA-256 of the inputs as canonical JSON (keys sorted, no spaces, numbers as `repr`), so
    equal inputs hash equally whatever order they were collected in."""
    canonical = json.dumps({k: float(v) for k, v in inputs.items()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_filter(*, decision_type: int, context: str, decided_by: str, start: datetime | None,
                    end: datetime | None, v: Violations) -> None:
    v.enum(decision_type, "decision_type", frozenset(DecisionType), "DecisionType")
    v.max_length(context, "context", MAX_CONTEXT)
    v.max_length(decided_by, "decided_by", MAX_CONTEXT)
    if start is not None and end is not None:
        v.check(start < end, "decide_interval", "must end after it starts")
