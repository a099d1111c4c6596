"""Cross-sell association rules as the service's code sees them: plain, picklable values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any


@dataclass(frozen=True)
class RuleMiningRequest:
    """Customer id -> the product categories they hold (an empty set is a customer holding none,
    who still counts in every support's denominator)."""

    baskets: Mapping[str, frozenset[str]]
    min_support: float = 0.01
    min_confidence: float = 0.1
    min_lift: float = 1.0
    max_antecedent_size: int = 2
    max_rules: int = 100


@dataclass(frozen=True)
class AssociationRule:
    """Customers holding every `antecedent` category tend to hold `consequent` too.

    support = both_count / basket_count; confidence = both_count / antecedent_count;
    lift = confidence / (consequent_count / basket_count)."""

    antecedent: tuple[str, ...]
    consequent: str
    support: float
    confidence: float
    lift: float
    antecedent_count: int
    consequent_count: int
    both_count: int


@dataclass(frozen=True)
class RuleMiningResult:
    # Highest lift first, then confidence, support, and the names for a stable order.
    rules: tuple[AssociationRule, ...]
    basket_count: int
    # Rules that met every threshold, before the `max_rules` cap.
    matching_rule_count: int

    @property
    def truncated(self) -> bool:
        return self.matching_rule_count > len(self.rules)


# --- served runs ---------------------------------------------------------------------------------

KIND = "segment.association"


class RuleOrder(IntEnum):
    """crm.segment.v1.AssociationRuleOrder numbers."""

    UNSPECIFIED = 0
    LIFT = 1
    CONFIDENCE = 2
    SUPPORT = 3


@dataclass(frozen=True)
class MiningSpec:
    """What a caller asked for, checked (`rules.check_start`), defaults filled in."""

    population_segment_id: str
    min_support: float
    min_confidence: float
    min_lift: float
    # Antecedent plus consequent, 2..4.
    max_rule_size: int
    max_rules: int


@dataclass(frozen=True)
class MiningJob:
    """What the worker process gets: the run to compute and where its data is."""

    run_id: str
    operation_id: str
    database_url: str
    spec: MiningSpec
    # The finished run -> the operation's response (a module-level function of the API layer).
    result_message: Callable[[AssociationRun], Any]


@dataclass(frozen=True)
class AssociationRun:
    run_id: str
    operation_id: str
    # crm.common.v1.OperationState number: SUCCEEDED once completed, else its operation's state.
    state: int
    spec: MiningSpec
    creator: str
    created_at: datetime
    completed_at: datetime | None
    ended_at: datetime | None
    customer_count: int
    rule_count: int
    matching_rule_count: int
    features_as_of: datetime | None


@dataclass(frozen=True)
class StoredRule:
    """A rule of a run: its rank in the run (from 1) and the CEL that targets its customers."""

    rule_id: int
    rule: AssociationRule
    target_rule: str


@dataclass(frozen=True)
class RuleFilter:
    held_items: tuple[str, ...]
    consequent_item: str
    min_lift: float
    min_confidence: float
    order: RuleOrder
