"""The control-group split: random by seed, reproducible, the asked share."""

from __future__ import annotations

from decimal import Decimal

from crm_campaign.audience.rules import in_control_group

CUSTOMERS = [f"c-{n}" for n in range(20_000)]


def held_out(seed: int, share: str) -> set[str]:
    return {c for c in CUSTOMERS if in_control_group(seed=seed, customer_id=c, holdout_percentage=Decimal(share))}


def test_the_same_seed_reproduces_the_same_split() -> None:
    assert held_out(42, "10") == held_out(42, "10")


def test_another_seed_holds_out_other_customers() -> None:
    first, second = held_out(42, "10"), held_out(43, "10")
    assert len(first & second) < len(first) * 0.2, "two campaigns' control groups are independent draws"


def test_the_share_held_out_is_the_percentage_asked() -> None:
    for share, expected in (("10", 2000), ("2.5", 500), ("50", 10_000)):
        # within four standard deviations of a binomial(20000, p) count
        sd = (20_000 * expected / 20_000 * (1 - expected / 20_000)) ** 0.5
        assert abs(len(held_out(7, share)) - expected) < 4 * sd


def test_no_hold_out_holds_no_one_out() -> None:
    assert held_out(7, "0") == set()
