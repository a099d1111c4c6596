"""Scoring one customer between classification runs: the cuts of a run score every customer as the
run itself did, and a downgrade waits out its tier's grace."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from crm_segment.classifications import rules
from crm_segment.classifications.model import RfmInput, TierState, ValueTier

customers = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(0, 30)), st.integers(0, 6), st.integers(0, 5).map(lambda m: m * 100)),
    max_size=40,
).map(lambda values: [RfmInput(f"c{i:03d}", r, f, m) for i, (r, f, m) in enumerate(values)])


@given(customers)
def test_the_runs_cuts_give_every_customer_the_runs_score(population: list[RfmInput]) -> None:
    boundaries = rules.rfm_boundaries(population)
    assert [rules.rfm_score_against(boundaries, c) for c in population] == rules.rfm_scores(population)


def test_a_newcomer_is_placed_among_the_runs_population() -> None:
    population = [RfmInput(f"c{i}", 10 - i, i + 1, (i + 1) * 100) for i in range(10)]
    boundaries = rules.rfm_boundaries(population)
    best = rules.rfm_score_against(boundaries, RfmInput("new", 0, 50, 10**6))
    assert best.cell == "555"
    assert rules.rfm_score_against(boundaries, RfmInput("never", None, 0, 0)).cell == "111"


def test_cut_positions_are_the_last_of_each_quintile() -> None:
    assert rules.cut_positions(10) == (2, 4, 6, 8)
    assert rules.cut_positions(7) == (1, 2, 4, 5)
    assert rules.cut_positions(1) == (0, 0, 0, 0)


TODAY = date(2026, 3, 31)
VIP = TierState(ValueTier.VIP, date(2025, 1, 1), ValueTier.MASS_AFFLUENT, None)


def test_upgrades_are_immediate_and_remember_the_tier_before() -> None:
    assert rules.next_tier_state(VIP, ValueTier.PRIVATE, grace_months=3, today=TODAY) == TierState(
        ValueTier.PRIVATE, TODAY, ValueTier.VIP, None)
    first = TierState(ValueTier.UNSPECIFIED, None, ValueTier.UNSPECIFIED, None)
    assert rules.next_tier_state(first, ValueTier.MASS, grace_months=3, today=TODAY).tier is ValueTier.MASS


def test_a_downgrade_waits_for_the_grace_and_is_forgotten_on_requalifying() -> None:
    waiting = rules.next_tier_state(VIP, ValueTier.MASS_AFFLUENT, grace_months=3, today=TODAY)
    # 31 March + 3 months: the last day of June.
    assert waiting == TierState(ValueTier.VIP, VIP.since, VIP.previous, date(2026, 6, 30))
    still = rules.next_tier_state(waiting, ValueTier.MASS, grace_months=3, today=date(2026, 6, 29))
    assert still == waiting
    moved = rules.next_tier_state(waiting, ValueTier.MASS, grace_months=3, today=date(2026, 6, 30))
    assert moved == TierState(ValueTier.MASS, date(2026, 6, 30), ValueTier.VIP, None)
    assert rules.next_tier_state(waiting, ValueTier.VIP, grace_months=3, today=TODAY) == VIP
    assert rules.next_tier_state(VIP, ValueTier.MASS, grace_months=0, today=TODAY).tier is ValueTier.MASS


def test_potential_ranks_above_mass() -> None:
    mass = TierState(ValueTier.MASS, TODAY, ValueTier.UNSPECIFIED, None)
    assert rules.next_tier_state(mass, ValueTier.POTENTIAL, grace_months=6, today=TODAY).tier is ValueTier.POTENTIAL
