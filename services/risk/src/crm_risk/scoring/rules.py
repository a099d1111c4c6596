"""Scoring's pure decisions: a probability's band, when a written-back score goes on the change
feed, the request's shape, and the model's input row from the read model's values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from crm_risk.churn.model import SnapshotTable
from crm_risk.scoring.model import RiskBand
from crmkit.resources import ResourceName
from crmkit.validation import Violations

MAX_DRIVERS = 10
DEFAULT_DRIVERS = 5
# A written-back score is published when its band changes or it moves by this much (the contract).
PUBLISH_STEP = 0.05
ID_COLUMN = "customer_id"
CUSTOMER_NAME = ResourceName("customers/{customer_id}")
CHURN_MODEL_NAME = ResourceName("churnModels/{churn_model_id}")


def band_of(probability: float, thresholds: Mapping[str, Any]) -> RiskBand:
    if probability >= thresholds["high_min_probability"]:
        return RiskBand.HIGH
    if probability >= thresholds["medium_min_probability"]:
        return RiskBand.MEDIUM
    return RiskBand.LOW


class Banded(Protocol):
    """What the feed rule reads of a score (a `Score`, or a batch's `repository.Previous`)."""

    @property
    def risk_band(self) -> RiskBand: ...

    @property
    def probability(self) -> float: ...


def publishes(previous: Banded | None, current: Banded, *, step: float = PUBLISH_STEP) -> bool:
    """Whether a written-back score goes on the change feed: a first score, a new band, or a move
    of at least `step`."""
    if previous is None or previous.risk_band != current.risk_band:
        return True
    return abs(current.probability - previous.probability) >= step - 1e-12


def validate_request(max_drivers: int, v: Violations) -> int:
    """The drivers to return (0 means the default)."""
    v.check(0 <= max_drivers <= MAX_DRIVERS, "max_drivers", f"must be between 1 and {MAX_DRIVERS} (0 means "
                                                           f"{DEFAULT_DRIVERS})")
    return max_drivers or DEFAULT_DRIVERS


def missing_features(features: Sequence[str], values: Mapping[str, object]) -> list[str]:
    return [name for name in features if name not in values]


def input_table(customer_id: str, features: Sequence[str], values: Mapping[str, str | float]) -> SnapshotTable:
    """One customer's row as the model reads it; a feature the read model lacks is missing (the
    model treats it as unknown)."""
    return SnapshotTable(columns=(ID_COLUMN, *features),
                         rows=((customer_id, *(values.get(name) for name in features)),))


def input_rows(features: Sequence[str], rows: Sequence[tuple[str, Mapping[str, str | float]]]) -> SnapshotTable:
    """Many customers' rows, as `input_table` makes one."""
    return SnapshotTable(columns=(ID_COLUMN, *features),
                         rows=tuple((customer_id, *(values.get(name) for name in features))
                                    for customer_id, values in rows))


MAX_BATCH_CUSTOMERS = 10_000


def validate_batch(customers: Sequence[str], model: str, v: Violations) -> None:
    v.check(len(customers) <= MAX_BATCH_CUSTOMERS, "customers", f"must name at most {MAX_BATCH_CUSTOMERS} customers")
    v.check(len(set(customers)) == len(customers), "customers", "must not name a customer twice")
    for i, name in enumerate(customers[:MAX_BATCH_CUSTOMERS]):
        CUSTOMER_NAME.check(name, f"customers[{i}]", v, required=True)
    if model:
        CHURN_MODEL_NAME.check(model, "model", v)


def numeric_inputs(features: Sequence[str], values: Mapping[str, str | float]) -> dict[str, float]:
    """The numeric inputs, for the decision audit (categories are named in the drivers)."""
    return {name: float(values[name]) for name in features if isinstance(values.get(name), (int, float))}
