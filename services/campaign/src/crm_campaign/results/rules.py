"""Pure results arithmetic: slices (overall, per offer, channel, segment) from per-cell counts.

The repository counts customers per cell (offer x channel x segment); every count is additive
over cells because each audience member lies in exactly one. Here they are summed into slices
and turned into rates, uplift with its interval, revenue, cost and ROI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from crm_campaign.results import stats
from crmkit.validation import Violations

K = TypeVar("K", str, int)
DEFAULT_LEVEL = 0.95
MIN_LEVEL, MAX_LEVEL = 0.8, 0.99


@dataclass(frozen=True)
class Cell:
    offer_id: str
    channel: int
    segment: str
    target: int = 0
    control: int = 0
    contacts: int = 0
    responses: int = 0
    target_conversions: int = 0
    control_conversions: int = 0
    revenue: Decimal = Decimal(0)


@dataclass(frozen=True)
class Slice:
    offer_id: str = ""
    channel: int = 0
    segment: str = ""
    target: int = 0
    control: int = 0
    contacts: int = 0
    responses: int = 0
    target_conversions: int = 0
    control_conversions: int = 0
    target_rate: float = 0.0
    control_rate: float = 0.0
    uplift: float = 0.0
    interval: tuple[float, float] | None = None
    revenue: Decimal = Decimal(0)
    incremental_revenue: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    roi: float = 0.0


@dataclass(frozen=True)
class Results:
    level: float
    final: bool
    overall: Slice
    by_offer: list[Slice]
    by_channel: list[Slice]
    by_segment: list[Slice]


def confidence_level(requested: float) -> float:
    """The level asked for (0 means the default), INVALID_ARGUMENT outside 0.8 to 0.99."""
    if requested == 0:
        return DEFAULT_LEVEL
    v = Violations()
    v.check(MIN_LEVEL <= requested <= MAX_LEVEL, "confidence_level", "must be from 0.8 to 0.99, or 0 for 0.95")
    v.raise_if_any()
    return requested


def results(cells: Iterable[Cell], *, channel_costs: Mapping[int, Decimal], fixed_cost: Decimal, level: float,
            closed_at: datetime | None, window: timedelta, now: datetime) -> Results:
    cells = list(cells)
    total_contacts = sum(c.contacts for c in cells)

    def one(members: list[Cell], *, overall: bool = False) -> Slice:
        return _slice(members, channel_costs=channel_costs, fixed_cost=fixed_cost, total_contacts=total_contacts,
                      level=level, overall=overall)

    return Results(
        level=level, final=closed_at is not None and now >= closed_at + window, overall=one(cells, overall=True),
        by_offer=[dataclasses.replace(one(part), offer_id=offer_id)
                  for offer_id, part in _grouped(cells, lambda c: c.offer_id)],
        by_channel=[dataclasses.replace(one(part), channel=channel)
                    for channel, part in _grouped(cells, lambda c: c.channel)],
        by_segment=[dataclasses.replace(one(part), segment=segment)
                    for segment, part in _grouped(cells, lambda c: c.segment)])


def _grouped(cells: list[Cell], key: Callable[[Cell], K]) -> list[tuple[K, list[Cell]]]:
    groups: dict[K, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(key(cell), []).append(cell)
    return sorted(groups.items())


def _slice(cells: list[Cell], *, channel_costs: Mapping[int, Decimal], fixed_cost: Decimal, total_contacts: int,
           level: float, overall: bool) -> Slice:
    target = sum(c.target for c in cells)
    control = sum(c.control for c in cells)
    contacts = sum(c.contacts for c in cells)
    target_conversions = sum(c.target_conversions for c in cells)
    control_conversions = sum(c.control_conversions for c in cells)
    revenue = sum((c.revenue for c in cells), Decimal(0))
    target_rate = target_conversions / target if target else 0.0
    control_rate = control_conversions / control if control else 0.0
    uplift = target_rate - control_rate if control else 0.0
    interval = (stats.newcombe_interval(target_conversions, target, control_conversions, control, level)
                if target and control else None)
    if not control:
        incremental = revenue
    elif target_conversions:
        mean_value = revenue / target_conversions
        incremental = Decimal(repr(uplift)) * target * mean_value
    else:
        incremental = Decimal(0)
    # The fixed cost is the whole campaign's; a slice carries its share by contacts.
    share = Decimal(contacts) / total_contacts if total_contacts else Decimal(0)
    fixed_share = fixed_cost if overall else fixed_cost * share
    cost = sum((channel_costs.get(c.channel, Decimal(0)) * c.contacts for c in cells), Decimal(0)) + fixed_share
    return Slice(
        target=target, control=control, contacts=contacts,
        responses=sum(c.responses for c in cells), target_conversions=target_conversions,
        control_conversions=control_conversions, target_rate=target_rate, control_rate=control_rate, uplift=uplift,
        interval=interval, revenue=revenue, incremental_revenue=incremental, cost=cost,
        roi=float((incremental - cost) / cost) if cost else 0.0)
