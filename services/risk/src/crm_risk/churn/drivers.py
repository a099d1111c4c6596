"""Why a customer scores high: per-customer contributions by one-at-a-time substitution.

For each source feature, a customer's contribution is their probability minus the probability
with that one feature set to the reference customer's value (the training median of a number,
the most common category of a categorical feature: all its one-hot columns move together). A
positive contribution means the customer's own value raises their risk against a typical one.

Why this method: it needs only the fitted model's predictions (works for the calibrated
ensemble as it stands), is exact about what the model does for this customer, and reads as
"your score is 12 points higher because of your age". Its limits: contributions do not sum to
the score's distance from the reference (interactions are counted in each feature or in none),
and a reference value can be rare in combination with the customer's other values. SHAP would
share interactions out fairly at a far higher cost; for early-warning reasons this is enough.
Cost: one prediction per customer and source feature whose value is not the reference's, batched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crm_risk.churn.model import Driver, Encoding, FeatureKind

Matrix = npt.NDArray[np.float64]
# Contributions below one probability point are noise, not a reason to give a manager.
MIN_CONTRIBUTION = 0.01


@dataclass(frozen=True)
class Reference:
    """The reference customer, per source feature: its model columns, their values, as text."""

    columns: tuple[tuple[int, ...], ...]
    values: tuple[tuple[float, ...], ...]
    shown: tuple[str, ...]


def reference(encoding: Encoding, values: Matrix) -> Reference:
    """The training data's typical customer (medians and most common categories)."""
    columns: list[tuple[int, ...]] = []
    reference_values: list[tuple[float, ...]] = []
    shown: list[str] = []
    position = 0
    categories = iter(encoding.categories)
    for feature in encoding.features:
        if feature.kind == FeatureKind.CATEGORICAL:
            names = next(categories)
            span = tuple(range(position, position + len(names)))
            counts = values[:, list(span)].sum(axis=0) if names else np.zeros(0)
            mode = int(np.argmax(counts)) if names else -1
            columns.append(span)
            reference_values.append(tuple(1.0 if i == mode else 0.0 for i in range(len(names))))
            shown.append(names[mode] if names else "")
            position += len(names)
            continue
        column = values[:, position]
        present = column[~np.isnan(column)]
        median = float(np.median(present)) if len(present) else float("nan")
        columns.append((position,))
        reference_values.append((median,))
        shown.append(f"{median:g}")
        position += 1
    return Reference(columns=tuple(columns), values=tuple(reference_values), shown=tuple(shown))


def contributions(predict: Callable[[Matrix], npt.NDArray[np.float64]], values: Matrix, ref: Reference
                  ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(probabilities, contributions customers x source features).

    A customer whose value of a feature already is the reference's is not predicted again for
    it: the substituted row would be the customer's own, its prediction the base one, its
    contribution exactly 0. (A row's prediction does not depend on the rows beside it.) Half
    the customers of a bank share the commonest category of a few-valued feature, so this
    spares about a third of the predictions, which are nearly all of a batch's scoring time."""
    blocks: list[Matrix] = [values]
    placed: list[tuple[int, npt.NDArray[np.intp]]] = []
    for f, (columns, replacement) in enumerate(zip(ref.columns, ref.values, strict=True)):
        span = list(columns)
        # NaN never equals the reference, so a missing value is substituted as before.
        rows = np.flatnonzero(~np.all(values[:, span] == np.asarray(replacement), axis=1))
        if len(rows):
            block = values[rows]
            block[:, span] = replacement
            blocks.append(block)
            placed.append((f, rows))
    # One call for the customers and all their substitutions: a call costs a Python step per
    # tree and fold, which for one customer is most of the time.
    predicted = predict(np.concatenate(blocks))
    base = predicted[:len(values)]
    moved = np.repeat(base[np.newaxis, :], len(ref.columns), axis=0)
    start = len(values)
    for f, rows in placed:
        moved[f, rows] = predicted[start:start + len(rows)]
        start += len(rows)
    return base, (base[np.newaxis, :] - moved).T


def top_drivers(encoding: Encoding, ref: Reference, contribution_row: npt.NDArray[np.float64],
                shown_row: tuple[str, ...], count: int) -> tuple[Driver, ...]:
    """The customer's `count` largest risk-raising contributions, largest first."""
    order = np.argsort(-contribution_row, kind="stable")
    drivers = []
    for f in order[:count]:
        if contribution_row[f] < MIN_CONTRIBUTION:
            break
        drivers.append(Driver(feature=encoding.features[f].name, value=shown_row[f] if shown_row else "",
                              reference=ref.shown[f], contribution=float(contribution_row[f])))
    return tuple(drivers)
