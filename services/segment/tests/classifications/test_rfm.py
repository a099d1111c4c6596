"""RFM scores and named segments: quintiles on a known population and on CDNOW's customers."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_segment.classifications import rules
from crm_segment.classifications.model import RfmInput, RfmSegment
from crmkit.testing import shared_data_dir


def population(values: list[tuple[int | None, int, int]]) -> list[RfmInput]:
    return [RfmInput(f"c{i:03d}", r, f, m) for i, (r, f, m) in enumerate(values)]


def test_ten_distinct_customers_two_per_quintile() -> None:
    # c000 is the most recent, least frequent, lowest value; c009 the reverse on all but recency.
    customers = population([(i, i + 1, (i + 1) * 1000) for i in range(10)])
    scores = rules.rfm_scores(customers)
    assert [s.recency for s in scores] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert [s.frequency for s in scores] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [s.monetary for s in scores] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [s.cell for s in scores][:2] == ["511", "511"]
    assert scores[0].segment is RfmSegment.NEW and scores[9].segment is RfmSegment.CANT_LOSE_THEM


def test_customers_without_a_transaction_score_one_and_are_not_ranked() -> None:
    customers = population([(None, 0, 0), (5, 0, 0), (3, 2, 500), (40, 1, 100)])
    scores = rules.rfm_scores(customers)
    assert [(s.cell, s.segment) for s in scores[:2]] == [("111", RfmSegment.LOST)] * 2
    # Only the two buyers are ranked: the better in the top fifth, the other at the median.
    assert [s.cell for s in scores[2:]] == ["555", "333"]


def test_ties_are_split_by_customer_id_whatever_the_input_order() -> None:
    customers = population([(7, 1, 100)] * 10)
    expected = {s.customer_id: s for s in rules.rfm_scores(customers)}
    assert Counter(s.frequency for s in expected.values()) == {q: 2 for q in range(1, 6)}
    shuffled = customers[:]
    random.Random(4).shuffle(shuffled)
    assert {s.customer_id: s for s in rules.rfm_scores(shuffled)} == expected


def test_shared_ties_give_equal_values_one_score() -> None:
    customers = population([(7, 1, 100)] * 6 + [(7, 2, 100), (7, 3, 100), (7, 4, 100), (7, 5, 100)])
    scores = rules.rfm_scores(customers, rules.Ties.SHARED)
    assert [s.frequency for s in scores] == [1] * 6 + [4, 4, 5, 5]
    assert {s.monetary for s in scores} == {1}


def test_duplicate_customers_are_refused() -> None:
    with pytest.raises(ValueError, match="once"):
        rules.rfm_scores(population([(1, 1, 1)]) * 2)


def test_grid_names_every_cell_with_the_eleven_segments() -> None:
    named = {rules.rfm_segment(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert named == set(RfmSegment) - {RfmSegment.UNSPECIFIED}


@pytest.mark.parametrize(("cell", "segment"), [
    ("555", RfmSegment.CHAMPIONS), ("544", RfmSegment.CHAMPIONS), ("534", RfmSegment.CHAMPIONS),
    ("533", RfmSegment.POTENTIAL_LOYALISTS), ("511", RfmSegment.NEW), ("411", RfmSegment.PROMISING),
    ("445", RfmSegment.LOYAL), ("333", RfmSegment.NEED_ATTENTION), ("321", RfmSegment.ABOUT_TO_SLEEP),
    ("255", RfmSegment.CANT_LOSE_THEM), ("145", RfmSegment.CANT_LOSE_THEM), ("144", RfmSegment.AT_RISK),
    ("233", RfmSegment.AT_RISK), ("222", RfmSegment.HIBERNATING), ("121", RfmSegment.HIBERNATING),
    ("111", RfmSegment.LOST),
])
def test_named_segment_of_a_cell(cell: str, segment: RfmSegment) -> None:
    assert rules.rfm_segment(*map(int, cell)) is segment


customer_values = st.tuples(st.none() | st.integers(0, 400), st.integers(0, 50), st.integers(-10**6, 10**9))


@given(st.lists(customer_values, max_size=60), st.sampled_from(rules.Ties))
def test_scores_are_always_one_to_five_and_quintiles_even(values: list, ties: rules.Ties) -> None:
    scores = rules.rfm_scores(population(values), ties)
    assert all(1 <= v <= 5 for s in scores for v in (s.recency, s.frequency, s.monetary))
    assert all(s.segment is not RfmSegment.UNSPECIFIED for s in scores)
    ranked = sum(1 for r, f, _ in values if r is not None and f > 0)
    if ties is rules.Ties.SPLIT and ranked >= 5:
        counts = Counter(s.frequency for s, (r, f, _) in zip(scores, values, strict=True) if r is not None and f > 0)
        assert max(counts.values()) - min(counts.get(q, 0) for q in range(1, 6)) <= 1


def cdnow_customers() -> list[RfmInput]:
    source = shared_data_dir("CDNOW_master.txt") / "CDNOW_master.txt"
    days: dict[str, set[date]] = defaultdict(set)
    cents: Counter[str] = Counter()
    with source.open() as lines:
        next(lines)  # header
        for line in lines:
            customer_id, day, _, dollars = line.split()
            days[customer_id].add(date(int(day[:4]), int(day[4:6]), int(day[6:])))
            cents[customer_id] += round(float(dollars) * 100)
    end = max(max(d) for d in days.values())
    # Several purchases on one day are one transaction (as in the data set's own studies).
    return [RfmInput(c, (end - max(d)).days, len(d), cents[c]) for c, d in days.items()]


def test_cdnow_quintiles_hold_a_fifth_each_and_every_customer_is_named() -> None:
    customers = cdnow_customers()
    assert len(customers) == 23_570
    scores = rules.rfm_scores(customers)
    for dimension in ("recency", "frequency", "monetary"):
        shares = Counter(getattr(s, dimension) for s in scores)
        assert all(abs(shares[q] / len(scores) - 0.2) < 0.001 for q in range(1, 6)), (dimension, shares)
    segments = Counter(s.segment for s in scores)
    assert sum(segments.values()) == len(customers) and RfmSegment.UNSPECIFIED not in segments
    # A cohort of first buyers 18 months on: half bought once, so hibernating and lost are large,
    # and the repeat buyers are loyal or champions.
    assert segments[RfmSegment.HIBERNATING] + segments[RfmSegment.LOST] > 0.25 * len(scores)
    assert segments[RfmSegment.CHAMPIONS] + segments[RfmSegment.LOYAL] > 0.25 * len(scores)


def test_cdnow_shared_ties_keep_recency_and_monetary_near_a_fifth() -> None:
    scores = rules.rfm_scores(cdnow_customers(), rules.Ties.SHARED)
    for dimension in ("recency", "monetary"):
        shares = Counter(getattr(s, dimension) for s in scores)
        assert all(abs(shares[q] / len(scores) - 0.2) < 0.01 for q in range(1, 6)), (dimension, shares)
    # Half of the customers bought on one day only: they all share frequency 1.
    assert Counter(s.frequency for s in scores)[1] / len(scores) == pytest.approx(0.51, abs=0.01)
