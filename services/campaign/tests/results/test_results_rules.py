"""Results slices from per-cell counts, against figures worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_campaign.campaigns.model import Channel
from crm_campaign.results import rules
from crm_campaign.results.rules import Cell
from crmkit.errors import InvalidArgument

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CELLS = [
    Cell("td-3y", Channel.SMS, "segments/maturing", target=1000, control=100, contacts=950, responses=200,
         target_conversions=60, control_conversions=3, revenue=Decimal(72_000)),
    Cell("fund-1", Channel.MOBILE_APP, "segments/maturing", target=500, control=50, contacts=500, responses=50,
         target_conversions=10, control_conversions=1, revenue=Decimal(8_000)),
]
COSTS = {int(Channel.SMS): Decimal("0.05")}


def compute(**overrides: object) -> rules.Results:
    options: dict[str, object] = {"channel_costs": COSTS, "fixed_cost": Decimal(20_000), "level": 0.95,
                                  "closed_at": None, "window": timedelta(days=30), "now": NOW}
    options.update(overrides)
    return rules.results(CELLS, **options)  # type: ignore[arg-type]


def test_overall_figures_worked_by_hand() -> None:
    overall = compute().overall
    assert (overall.target, overall.control, overall.contacts, overall.responses) == (1500, 150, 1450, 250)
    # 70/1500 - 4/150 = 0.046667 - 0.026667 = 0.02
    assert (overall.target_rate, overall.control_rate, overall.uplift) == pytest.approx((70 / 1500, 4 / 150, 0.02))
    assert overall.revenue == Decimal(80_000)
    # uplift x target x mean conversion value = 0.02 x 1500 x 80000/70 = 34285.71
    assert float(overall.incremental_revenue) == pytest.approx(34_285.714, abs=0.01)
    # 950 SMS at 0.05 + the fixed 20000
    assert overall.cost == Decimal("20047.50")
    assert overall.roi == pytest.approx((34_285.714 - 20_047.5) / 20_047.5, abs=1e-5)
    assert overall.interval is not None and overall.interval[0] < 0.02 < overall.interval[1]


def test_slices_share_the_fixed_cost_by_contacts() -> None:
    by_offer = {s.offer_id: s for s in compute().by_offer}
    renewal = by_offer["td-3y"]
    assert renewal.uplift == pytest.approx(0.03)
    assert float(renewal.incremental_revenue) == pytest.approx(0.03 * 1000 * 1200, abs=0.01)
    # 950 x 0.05 + 20000 x 950/1450
    assert float(renewal.cost) == pytest.approx(47.5 + 20_000 * 950 / 1450, abs=1e-6)
    assert float(by_offer["fund-1"].cost) == pytest.approx(20_000 * 500 / 1450, abs=1e-6)
    assert [s.channel for s in compute().by_channel] == [Channel.MOBILE_APP, Channel.SMS]
    [segment] = compute().by_segment
    assert (segment.segment, segment.target) == ("segments/maturing", 1500)


def test_without_a_control_group_there_is_no_uplift_and_all_revenue_counts() -> None:
    no_control = [Cell("td-3y", Channel.SMS, "", target=100, contacts=100, target_conversions=5,
                       revenue=Decimal(6_000))]
    overall = rules.results(no_control, channel_costs={}, fixed_cost=Decimal(0), level=0.95, closed_at=None,
                            window=timedelta(days=30), now=NOW).overall
    assert (overall.uplift, overall.interval, overall.incremental_revenue, overall.roi) == (
        0.0, None, Decimal(6_000), 0.0)


def test_results_are_final_once_the_attribution_window_after_closing_has_passed() -> None:
    assert not compute(closed_at=NOW - timedelta(days=29)).final
    assert compute(closed_at=NOW - timedelta(days=30)).final


@pytest.mark.parametrize("level", [0.5, 0.999, -1])
def test_a_confidence_level_outside_its_range_names_the_field(level: float) -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.confidence_level(level)
    assert [v.field for v in error.value.violations] == ["confidence_level"]
    assert rules.confidence_level(0) == 0.95
