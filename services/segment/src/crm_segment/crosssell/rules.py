"""Mining cross-sell association rules from customers' holdings. Pure: no I/O.

`mine` is a plain top-level function of one picklable request, so the service can run it in a
spawned worker (`crmkit.operations`).

Apriori, level by level: the categories held by at least `min_support` of customers, then the
pairs of those, then triples, each level's candidates pruned to those whose every subset one
smaller was itself frequent (a set is never more common than its parts). Customers are the rows
of one boolean matrix; an itemset's count is a vectorised AND over its columns and a matrix
product for all its extensions at once, never a Python loop over baskets. The only Python loops
run over candidate itemsets, whose number the categories (a dozen today) and `min_support` bound.

A rule X -> y has a single category as its consequent: a cross-sell campaign offers one product.

Why hand-written: mlxtend (`apriori`, `association_rules`) is the well-kept library for this, but
it is not in the workspace lock and must not be added for some sixty lines; it also wants a pandas
DataFrame, and pandas is not in the lock either. efficient-apriori is not in the lock and loops
over transactions in Python.

The CEL that targets a rule's customers is in the package docstring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from crm_segment.crosssell.model import (
    AssociationRule,
    MiningSpec,
    RuleFilter,
    RuleMiningRequest,
    RuleMiningResult,
    RuleOrder,
    StoredRule,
)
from crmkit.validation import Violations

MAX_ANTECEDENT_SIZE = 3
MAX_RULES = 1000
MAX_CATEGORIES = 200
MAX_CATEGORY_LENGTH = 100

Itemset = tuple[int, ...]


def validate(request: RuleMiningRequest) -> None:
    """InvalidArgument naming every bad field of the request."""
    v = Violations()
    v.check(0 < request.min_support <= 1, "min_support", "must be greater than 0 and at most 1")
    v.check(0 <= request.min_confidence <= 1, "min_confidence", "must be between 0 and 1")
    v.check(0 <= request.min_lift < math.inf, "min_lift", "must be a finite number, 0 or more")
    v.check(1 <= request.max_antecedent_size <= MAX_ANTECEDENT_SIZE, "max_antecedent_size",
            f"must be between 1 and {MAX_ANTECEDENT_SIZE}")
    v.check(1 <= request.max_rules <= MAX_RULES, "max_rules", f"must be between 1 and {MAX_RULES}")
    categories = set().union(*request.baskets.values()) if request.baskets else set()
    v.check(all(isinstance(c, str) and 0 < len(c) <= MAX_CATEGORY_LENGTH for c in categories), "baskets",
            f"every product category must be a non-empty name of at most {MAX_CATEGORY_LENGTH} characters")
    v.check(len(categories) <= MAX_CATEGORIES, "baskets", f"must hold at most {MAX_CATEGORIES} distinct categories")
    v.raise_if_any()


def mine(request: RuleMiningRequest) -> RuleMiningResult:
    """The rules that meet every threshold, highest lift first, at most `max_rules` of them."""
    validate(request)
    categories = sorted(set().union(*request.baskets.values())) if request.baskets else []
    held = holdings_matrix(request.baskets.values(), categories)
    baskets = held.shape[0]
    if baskets == 0:
        return RuleMiningResult(rules=(), basket_count=0, matching_rule_count=0)
    # One BLAS thread: the worker pool is the unit of parallelism, and on a busy host BLAS
    # threads spin waiting for each other (200,000 customers: 2.2 s wall with them, 0.5 s without).
    with threadpool_limits(limits=1):
        counts = frequent_itemsets(held, request.min_support, request.max_antecedent_size + 1)
    found = sorted(_rules(counts, categories, baskets, request),
                   key=lambda r: (-r.lift, -r.confidence, -r.support, r.antecedent, r.consequent))
    return RuleMiningResult(rules=tuple(found[:request.max_rules]), basket_count=baskets,
                            matching_rule_count=len(found))


def holdings_matrix(baskets: Collection[frozenset[str]], categories: list[str]) -> npt.NDArray[np.bool_]:
    """Customers x categories, True where the customer holds the category."""
    column = {category: i for i, category in enumerate(categories)}
    # map() and chain() iterate in C: a tenth of the time of a Python loop per basket.
    lengths = np.fromiter(map(len, baskets), dtype=np.intp, count=len(baskets))
    rows = np.repeat(np.arange(len(baskets)), lengths)
    columns = np.fromiter(map(column.__getitem__, chain.from_iterable(baskets)), dtype=np.intp,
                          count=int(lengths.sum()))
    held = np.zeros((len(baskets), len(categories)), dtype=np.bool_)
    held[rows, columns] = True
    return held


def frequent_itemsets(held: npt.NDArray[np.bool_], min_support: float, max_size: int) -> dict[Itemset, int]:
    """Every itemset of up to `max_size` columns held together by at least `min_support` of the
    rows, with its count; itemsets are sorted column indices."""
    baskets = held.shape[0]
    # Counts as float64 products: BLAS does them, several times faster than integer ones, and
    # exact up to 2**53 customers.
    as_float = np.asfortranarray(held, dtype=np.float64)
    singles = held.sum(axis=0)
    level: dict[Itemset, int] = {(int(i),): int(singles[i]) for i in np.flatnonzero(singles / baskets >= min_support)}
    found = dict(level)
    for _ in range(1, max_size):
        next_level: dict[Itemset, int] = {}
        for itemset, extensions in _candidates(level).items():
            together = as_float[:, itemset[0]].copy()
            for item in itemset[1:]:
                together *= as_float[:, item]
            # One product over every column beats gathering the extensions' columns first.
            extension_counts = (together @ as_float)[extensions]
            for item, count in zip(extensions, extension_counts.astype(np.int64).tolist(), strict=True):
                if count / baskets >= min_support:
                    next_level[(*itemset, item)] = count
        if not next_level:
            break
        found |= next_level
        level = next_level
    return found


def _candidates(level: dict[Itemset, int]) -> dict[Itemset, list[int]]:
    """Each frequent itemset's one-larger candidates, as the columns to add: a later column that
    makes every subset one smaller frequent too (apriori pruning)."""
    items = sorted({i for itemset in level for i in itemset})
    candidates: dict[Itemset, list[int]] = {}
    for itemset in level:
        extensions = [j for j in items if j > itemset[-1]
                      and all((*itemset[:k], *itemset[k + 1:], j) in level for k in range(len(itemset)))]
        if extensions:
            candidates[itemset] = extensions
    return candidates


def _rules(counts: dict[Itemset, int], categories: list[str], baskets: int,
           request: RuleMiningRequest) -> Iterable[AssociationRule]:
    for itemset, both in counts.items():
        if len(itemset) < 2:
            continue
        support = both / baskets
        for position, consequent in enumerate(itemset):
            antecedent = itemset[:position] + itemset[position + 1:]
            # Both are frequent: every subset of a frequent itemset is.
            antecedent_count, consequent_count = counts[antecedent], counts[(consequent,)]
            confidence = both / antecedent_count
            lift = confidence / (consequent_count / baskets)
            if confidence >= request.min_confidence and lift >= request.min_lift:
                yield AssociationRule(
                    antecedent=tuple(categories[i] for i in antecedent), consequent=categories[consequent],
                    support=support, confidence=confidence, lift=lift, antecedent_count=antecedent_count,
                    consequent_count=consequent_count, both_count=both)


# --- serving runs: what a caller may ask for, and the segment a rule targets ----------------------

DEFAULT_MIN_SUPPORT = 0.01
DEFAULT_MIN_CONFIDENCE = 0.1
DEFAULT_MIN_LIFT = 1.0
DEFAULT_MAX_RULE_SIZE = 3
DEFAULT_MAX_RULES = 100
MAX_HELD_ITEMS = 100
# The catalogue feature a target rule reads.
HOLDINGS_FEATURE = "product_categories"


def check_start(*, min_support: float, min_confidence: float, min_lift: float, max_rule_size: int, max_rules: int,
                population_segment_id: str) -> MiningSpec:
    """The run a MineAssociationRules request describes, 0s replaced by the defaults;
    InvalidArgument naming every bad field."""
    support = min_support or DEFAULT_MIN_SUPPORT
    confidence = min_confidence or DEFAULT_MIN_CONFIDENCE
    lift = min_lift or DEFAULT_MIN_LIFT
    size = max_rule_size or DEFAULT_MAX_RULE_SIZE
    cap = max_rules or DEFAULT_MAX_RULES
    v = Violations()
    v.check(0 < support <= 1, "min_support", "must be greater than 0 and at most 1 (0 means 0.01)")
    v.check(0 <= confidence <= 1, "min_confidence", "must be between 0 and 1 (0 means 0.1)")
    v.check(0 <= lift < math.inf, "min_lift", "must be a finite number, 0 or more (0 means 1.0)")
    v.check(2 <= size <= MAX_ANTECEDENT_SIZE + 1, "max_rule_size",
            f"must be between 2 and {MAX_ANTECEDENT_SIZE + 1} (0 means {DEFAULT_MAX_RULE_SIZE})")
    v.check(1 <= cap <= MAX_RULES, "max_rules", f"must be between 1 and {MAX_RULES} (0 means {DEFAULT_MAX_RULES})")
    v.raise_if_any()
    return MiningSpec(population_segment_id=population_segment_id, min_support=support, min_confidence=confidence,
                      min_lift=lift, max_rule_size=size, max_rules=cap)


def request_of(spec: MiningSpec, baskets: Mapping[str, frozenset[str]]) -> RuleMiningRequest:
    return RuleMiningRequest(baskets=baskets, min_support=spec.min_support, min_confidence=spec.min_confidence,
                             min_lift=spec.min_lift, max_antecedent_size=spec.max_rule_size - 1,
                             max_rules=spec.max_rules)


def target_rule(rule: AssociationRule) -> str:
    """The CEL selecting the rule's prospects: every antecedent category held, the consequent
    not. Category names are quoted as CEL string literals (JSON escaping is valid CEL)."""
    held = [f"{json.dumps(item)} in {HOLDINGS_FEATURE}" for item in rule.antecedent]
    return " && ".join([*held, f"!({json.dumps(rule.consequent)} in {HOLDINGS_FEATURE})"])


def stored_rules(result: RuleMiningResult) -> tuple[StoredRule, ...]:
    """The result's rules as stored and served: ranked from 1 in the result's order."""
    return tuple(StoredRule(rule_id=rank, rule=rule, target_rule=target_rule(rule))
                 for rank, rule in enumerate(result.rules, start=1))


def check_filter(*, held_items: Sequence[str], consequent_item: str, min_lift: float, min_confidence: float,
                 order: int) -> RuleFilter:
    """ListAssociationRules' filter; InvalidArgument naming every bad field."""
    v = Violations()
    v.check(len(held_items) <= MAX_HELD_ITEMS, "held_items", f"must hold at most {MAX_HELD_ITEMS} items")
    v.check(all(0 < len(i) <= MAX_CATEGORY_LENGTH for i in held_items), "held_items",
            f"every item must be a non-empty name of at most {MAX_CATEGORY_LENGTH} characters")
    v.check(len(consequent_item) <= MAX_CATEGORY_LENGTH, "consequent_item",
            f"must be at most {MAX_CATEGORY_LENGTH} characters")
    v.check(0 <= min_lift < math.inf, "min_lift", "must be a finite number, 0 or more")
    v.check(0 <= min_confidence <= 1, "min_confidence", "must be between 0 and 1")
    v.enum(order, "order_by", set(RuleOrder), "AssociationRuleOrder")
    v.raise_if_any()
    return RuleFilter(held_items=tuple(held_items), consequent_item=consequent_item, min_lift=min_lift,
                      min_confidence=min_confidence, order=RuleOrder(order or RuleOrder.LIFT))
