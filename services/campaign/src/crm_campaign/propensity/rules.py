"""Pure rules of propensity training: valid parameters, the feature encoding, the measures."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crm_campaign.propensity.model import Metrics, TooFewContacts, TrainingParams, TrainingRow
from crmkit.validation import Violations

OFFER_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
DEFAULT_HELD_OUT = 0.2
MIN_ROWS = 200
MIN_PER_CLASS = 20
CALIBRATION_BINS = 10
# HistGradientBoosting takes categories as codes below its bin count; rarer ones share the last.
MAX_CATEGORIES = 250
# Contact fields the model reads: numeric ones, and ones that are categories although numbered.
NUMERIC_FIELDS = ("attempt_number", "days_since_previous_contact", "previous_contact_count")
CATEGORICAL_FIELDS = ("channel", "contact_month", "contact_day_of_week", "previous_outcome")
# A contact-history feature: how many contacts the bank made for the offer type in the same
# calendar slot (month and weekday), i.e. the campaign's load when the call was made.
SLOT_LOAD = "slot_contacts"

Matrix = npt.NDArray[np.float64]


def params_of(offer_type: str, held_out_fraction: float, seed: int, v: Violations) -> TrainingParams:
    v.check(bool(OFFER_TYPE.fullmatch(offer_type)), "offer_type", f"is required and must match {OFFER_TYPE.pattern}")
    fraction = held_out_fraction or DEFAULT_HELD_OUT
    v.check(0.1 <= fraction <= 0.5, "held_out_fraction", "must be between 0.1 and 0.5 (0 means 0.2)")
    v.check(0 <= seed <= 2**31 - 1, "seed", "must be between 0 and 2147483647")
    return TrainingParams(offer_type=offer_type, held_out_fraction=fraction, seed=seed)


def check_rows(rows: Sequence[TrainingRow]) -> None:
    accepted = sum(r.accepted for r in rows)
    if len(rows) < MIN_ROWS or min(accepted, len(rows) - accepted) < MIN_PER_CLASS:
        raise TooFewContacts(f"training needs at least {MIN_ROWS} contacts with an outcome and {MIN_PER_CLASS} "
                             f"each accepted and declined; the offer type has {len(rows)}, {accepted} accepted")


@dataclass(frozen=True)
class Encoding:
    """How rows become a matrix: column names, which are categories, and each category's codes."""

    features: tuple[str, ...]
    categorical: tuple[bool, ...]
    codes: tuple[tuple[tuple[str, int], ...], ...]
    slot_load: tuple[tuple[str, int], ...]

    def matrix(self, rows: Sequence[TrainingRow]) -> Matrix:
        code_maps = [dict(c) for c in self.codes]
        loads = dict(self.slot_load)
        out = np.full((len(rows), len(self.features)), np.nan)
        for i, row in enumerate(rows):
            for j, name in enumerate(self.features):
                value = _raw(row, name, loads)
                if value is None:
                    continue
                if self.categorical[j]:
                    out[i, j] = code_maps[j].get(str(value), MAX_CATEGORIES)
                else:
                    out[i, j] = float(value)
        return out


def _slot(row: TrainingRow) -> str:
    return f"{row.fields.get('contact_month')}/{row.fields.get('contact_day_of_week')}"


def _raw(row: TrainingRow, name: str, loads: dict[str, int]) -> float | str | bool | None:
    if name == SLOT_LOAD:
        return loads.get(_slot(row), 0)
    if name.startswith("context."):
        return row.context.get(name.removeprefix("context."))
    if name.startswith("customer."):
        return row.customer.get(name.removeprefix("customer."))
    return row.fields.get(name)


def fit_encoding(rows: Sequence[TrainingRow]) -> Encoding:
    """Features from the rows themselves: the contact fields, then every context key and customer
    feature (text as categories, numbers and booleans as numbers), then the slot load."""
    kinds: dict[str, bool] = {}
    for row in rows:
        for prefix, values in (("context.", row.context), ("customer.", row.customer)):
            for key, value in values.items():
                kinds[prefix + key] = kinds.get(prefix + key, False) or isinstance(value, str)
    candidates = [*NUMERIC_FIELDS, *CATEGORICAL_FIELDS, *sorted(kinds), SLOT_LOAD]
    loads = Counter(_slot(row) for row in rows)
    # A feature the rows never vary (a field no mapping filled, one channel only) teaches nothing.
    features = [name for name in candidates
                if len({_raw(row, name, loads) for row in rows} - {None}) > 1]
    categorical = [name in CATEGORICAL_FIELDS or kinds.get(name, False) for name in features]
    codes: list[tuple[tuple[str, int], ...]] = []
    for name, is_category in zip(features, categorical, strict=True):
        if not is_category:
            codes.append(())
            continue
        counts = Counter(str(v) for row in rows if (v := _raw(row, name, {})) is not None)
        codes.append(tuple((value, code) for code, (value, _) in enumerate(counts.most_common(MAX_CATEGORIES))))
    return Encoding(features=tuple(features), categorical=tuple(categorical), codes=tuple(codes),
                    slot_load=tuple(sorted(loads.items())))


def calibration_error(labels: npt.NDArray[np.int_], scores: Matrix, bins: int = CALIBRATION_BINS) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            error += mask.mean() * abs(float(scores[mask].mean()) - float(labels[mask].mean()))
    return error


def metrics(labels: npt.NDArray[np.int_], scores: Matrix, *, training_rows: int, positive_rate: float) -> Metrics:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    return Metrics(roc_auc=float(roc_auc_score(labels, scores)),
                   average_precision=float(average_precision_score(labels, scores)),
                   brier_score=float(brier_score_loss(labels, scores)),
                   expected_calibration_error=float(calibration_error(labels, scores)), training_rows=training_rows,
                   held_out_rows=len(labels), positive_rate=positive_rate)


def fingerprint(rows: Sequence[TrainingRow]) -> str:
    """SHA-256 over the rows the model learned from (ids, outcomes, fields and context), so two
    versions trained on the same history share it whatever their split."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row.customer_id, row.accepted, row.fields, row.context, row.customer], sort_keys=True,
                                 default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
