"""Cross-sell association rules as the service's code sees them: plain, picklable values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
