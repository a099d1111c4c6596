"""Match rules, candidates and merges as the service's code sees them (enums are the proto numbers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_profile.consents.rules import ConsentConflict
from crm_profile.customers.model import ExternalId

# MatchKey
KEY_ID_DOCUMENT, KEY_MOBILE_PHONE, KEY_EMAIL, KEY_EXTERNAL_ID = 1, 2, 3, 4
# FuzzyField
FULL_NAME, BIRTH_DATE, ADDRESS = 1, 2, 3
# SimilarityMethod
EXACT, JARO_WINKLER, LEVENSHTEIN, TOKEN_SET, DATE_TYPO = 1, 2, 3, 4, 5
# MatchAction
SUGGEST, AUTO_MERGE = 1, 2
# MatchCandidateState
PENDING, CANDIDATE_MERGED, DISMISSED = 1, 2, 3
# SurvivorshipStrategy (FIXED_RULE is the unspecified value, shown for risk tolerance)
FIXED_RULE, SURVIVOR, SOURCE, MOST_RECENT, MOST_RECENTLY_CONFIRMED, MOST_TRUSTED_SOURCE, EARLIEST, MOST_COMPLETE = (
    range(8))
# MergeState
MERGE_ACTIVE, MERGE_UNMERGED = 1, 2
# MergeReviewReason
REVIEW_CONSENT_CONFLICT, REVIEW_DO_NOT_CONTACT_CONFLICT, REVIEW_RISK_TOLERANCE_CONFLICT = 1, 2, 3

# Principal of the background matcher's automatic merges.
MATCHER = "system:matcher"


@dataclass(frozen=True)
class FuzzyComparison:
    field: int
    method: int
    weight: float
    min_similarity: float = 0.0


@dataclass(frozen=True)
class FuzzyCriteria:
    comparisons: tuple[FuzzyComparison, ...]
    review_threshold: float
    auto_merge_threshold: float = 0.0


@dataclass(frozen=True)
class SurvivorshipRule:
    field: str
    strategy: int
    source_priority: tuple[str, ...] = ()


@dataclass(frozen=True)
class MatchRule:
    match_rule_id: str
    display_name: str = ""
    description: str = ""
    disabled: bool = False
    priority: int = 0
    exact_key: int | None = None  # set for exact rules ...
    fuzzy: FuzzyCriteria | None = None  # ... or this for fuzzy ones
    action: int = 0
    survivorship_rules: tuple[SurvivorshipRule, ...] = ()
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"matchRules/{self.match_rule_id}"

    @property
    def etag(self) -> str:
        return str(self.version)


@dataclass(frozen=True)
class FieldSimilarity:
    field: int
    similarity: float


@dataclass(frozen=True)
class Match:
    """A customer that a rule says may be the same as the subject."""

    customer_id: str
    match_rule_id: str
    score: float
    similarities: tuple[FieldSimilarity, ...] = ()
    candidate_name: str = ""
    review_conflict: bool = False


@dataclass(frozen=True)
class MatchCandidate:
    candidate_id: uuid.UUID
    customer_ids: tuple[str, str]  # older first
    match_rule_id: str
    score: float
    similarities: tuple[FieldSimilarity, ...]
    state: int
    review_conflict: bool
    created_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str = ""
    merge_name: str = ""

    @property
    def name(self) -> str:
        return f"matchCandidates/{self.candidate_id}"


@dataclass(frozen=True)
class FieldLineage:
    field: str
    chosen_from: str  # customer id
    strategy: int
    source_system: str = ""
    value_time: datetime | None = None


@dataclass(frozen=True)
class Merge:
    merge_id: uuid.UUID
    survivor_id: str
    source_id: str
    state: int
    field_lineage: tuple[FieldLineage, ...] = ()
    consent_conflicts: tuple[ConsentConflict, ...] = ()
    review_reasons: tuple[int, ...] = ()
    match_candidate_id: uuid.UUID | None = None
    match_rule_id: str = ""
    merged_by: str = ""
    merged_at: datetime | None = None
    unmerged_by: str = ""
    unmerged_at: datetime | None = None
    undo: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return f"customers/{self.survivor_id}/merges/{self.merge_id}"

    @property
    def review_required(self) -> bool:
        return bool(self.review_reasons)


@dataclass(frozen=True)
class IdDocumentKey:
    type: int
    number: str
    issuing_country: str


@dataclass(frozen=True)
class Identifier:
    """What LookupCustomer looks for: exactly one of these is set."""

    id_document: IdDocumentKey | None = None
    mobile_phone: str = ""
    email: str = ""
    external_id: ExternalId | None = None
