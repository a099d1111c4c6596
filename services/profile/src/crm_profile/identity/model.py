"""Match rules, candidates and merges as the service's code sees them (enums are the proto numbers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from crm_profile.consents.rules import ConsentConflict
from crm_profile.customers.model import ExternalId


class MatchKey(IntEnum):
    UNSPECIFIED = 0
    ID_DOCUMENT = 1
    MOBILE_PHONE = 2
    EMAIL = 3
    EXTERNAL_ID = 4


class FuzzyField(IntEnum):
    UNSPECIFIED = 0
    FULL_NAME = 1
    BIRTH_DATE = 2
    ADDRESS = 3


class SimilarityMethod(IntEnum):
    UNSPECIFIED = 0
    EXACT = 1
    JARO_WINKLER = 2
    LEVENSHTEIN = 3
    TOKEN_SET = 4
    DATE_TYPO = 5


class MatchAction(IntEnum):
    UNSPECIFIED = 0
    SUGGEST = 1
    AUTO_MERGE = 2


class MatchCandidateState(IntEnum):
    UNSPECIFIED = 0
    PENDING = 1
    MERGED = 2
    DISMISSED = 3


class SurvivorshipStrategy(IntEnum):
    UNSPECIFIED = 0  # shown as the strategy of a fixed rule (risk tolerance)
    SURVIVOR = 1
    SOURCE = 2
    MOST_RECENT = 3
    MOST_RECENTLY_CONFIRMED = 4
    MOST_TRUSTED_SOURCE = 5
    EARLIEST = 6
    MOST_COMPLETE = 7


class MergeState(IntEnum):
    UNSPECIFIED = 0
    ACTIVE = 1
    UNMERGED = 2


class MergeReviewReason(IntEnum):
    UNSPECIFIED = 0
    CONSENT_CONFLICT = 1
    DO_NOT_CONTACT_CONFLICT = 2
    RISK_TOLERANCE_CONFLICT = 3


# The members under the short names the identity code reads them by.
KEY_ID_DOCUMENT, KEY_MOBILE_PHONE, KEY_EMAIL, KEY_EXTERNAL_ID = (
    MatchKey.ID_DOCUMENT, MatchKey.MOBILE_PHONE, MatchKey.EMAIL, MatchKey.EXTERNAL_ID)
FULL_NAME, BIRTH_DATE, ADDRESS = FuzzyField.FULL_NAME, FuzzyField.BIRTH_DATE, FuzzyField.ADDRESS
EXACT, JARO_WINKLER, LEVENSHTEIN, TOKEN_SET, DATE_TYPO = (
    SimilarityMethod.EXACT, SimilarityMethod.JARO_WINKLER, SimilarityMethod.LEVENSHTEIN, SimilarityMethod.TOKEN_SET,
    SimilarityMethod.DATE_TYPO)
SUGGEST, AUTO_MERGE = MatchAction.SUGGEST, MatchAction.AUTO_MERGE
PENDING, CANDIDATE_MERGED, DISMISSED = (
    MatchCandidateState.PENDING, MatchCandidateState.MERGED, MatchCandidateState.DISMISSED)
FIXED_RULE, SURVIVOR, SOURCE, MOST_RECENT, MOST_RECENTLY_CONFIRMED, MOST_TRUSTED_SOURCE, EARLIEST, MOST_COMPLETE = (
    SurvivorshipStrategy)
MERGE_ACTIVE, MERGE_UNMERGED = MergeState.ACTIVE, MergeState.UNMERGED
REVIEW_CONSENT_CONFLICT, REVIEW_DO_NOT_CONTACT_CONFLICT, REVIEW_RISK_TOLERANCE_CONFLICT = (
    MergeReviewReason.CONSENT_CONFLICT, MergeReviewReason.DO_NOT_CONTACT_CONFLICT,
    MergeReviewReason.RISK_TOLERANCE_CONFLICT)

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
