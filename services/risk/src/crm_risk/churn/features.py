"""Training and scoring data for churn models. Pure: no I/O.

Two sources, one result (`TrainingData`):

- A snapshot with its own label column (`snapshot_training_data`): a bank's file with a churn
  flag. The caller names the features explicitly; the label and id columns can never be features.
- Event histories (`history_training_data`): features from the observation window
  [observation_start, cutoff), the label from the prediction window [cutoff, prediction_end).
  The leakage guard is structural: events are cut at the cutoff before any feature is computed,
  and a precomputed (external) feature known at or after the cutoff is rejected, not dropped,
  because a caller who sends one has a bug worth hearing about.

Categorical features are one-hot encoded over the categories seen in training, sorted; at
scoring an unseen category sets none of its columns (the model then treats it like no known
category). Missing numbers stay NaN: the gradient-boosting model learns where they go.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from crm_risk.churn.model import (
    Encoding,
    Event,
    ExternalFeature,
    FeatureKind,
    FeatureSpec,
    GroupAttributes,
    HistoryLabel,
    SnapshotTable,
    TrainingData,
    Window,
)
from crmkit.validation import Violations

MAX_FEATURES = 200
# Lower bounds of the fairness report's age bands; below the first is its own band.
AGE_BANDS = (30, 40, 50, 60)
UNKNOWN_GROUP = "unknown"
CLOSED_ALL = "closed_all"
# A bad file can be wrong in every row: name the first few cells, not ten thousand.
MAX_CELL_VIOLATIONS = 5
_TRUE = {"1", "true", "yes", "y", "1.0"}
_FALSE = {"0", "false", "no", "n", "0.0"}

# History features over the observation window. `count:<kind>` and `amount:<kind>` count and
# sum the events of one kind.
HISTORY_FEATURES = (
    "event_count", "inflow_sum", "outflow_sum", "net_flow", "balance_at_cutoff", "peak_balance",
    "days_since_last_event",
)
_KIND_FEATURE = re.compile(r"(count|amount):([a-z0-9_]{1,64})")


def age_band(age: float | None) -> str:
    if age is None or math.isnan(age):
        return UNKNOWN_GROUP
    lower = [b for b in AGE_BANDS if age >= b]
    if not lower:
        return f"<{AGE_BANDS[0]}"
    low = lower[-1]
    following = [b for b in AGE_BANDS if b > low]
    return f"{low}-{following[0] - 1}" if following else f"{low}+"


# --- snapshot ------------------------------------------------------------------------------


def snapshot_training_data(table: SnapshotTable, *, features: Sequence[FeatureSpec], label_attribute: str,
                           id_attribute: str, groups: GroupAttributes | None = None) -> TrainingData:
    """Labelled training data from a snapshot; InvalidArgument naming every bad field or cell."""
    groups = groups or GroupAttributes()
    v = Violations()
    _check_table(v, table, id_attribute)
    _check_features(v, table, features, reserved={id_attribute: "the customer id", label_attribute: "the label"})
    if v.check(bool(label_attribute), "label_attribute", "is required: name the column holding the churn label"):
        v.check(label_attribute in table.columns, "label_attribute",
                f"names no column of the data ({label_attribute!r})")
    for dimension, column in (("groups.age", groups.age), ("groups.gender", groups.gender),
                              ("groups.region", groups.region)):
        v.check(not column or column in table.columns, dimension, f"names no column of the data ({column!r})")
    v.raise_if_any()

    encoding = _fit_encoding(table, tuple(features))
    ids, values, display = _encode(v, table, encoding, id_attribute)
    labels = _labels(v, table, label_attribute)
    group_values = _groups(v, table, groups)
    v.raise_if_any()
    return TrainingData(customer_ids=ids, encoding=encoding, values=values, labels=labels,
                        groups=group_values, display_values=display)


def snapshot_scoring_data(table: SnapshotTable, *, encoding: Encoding, id_attribute: str) -> TrainingData:
    """Unlabelled rows encoded exactly as the model was trained (`encoding` is the model's)."""
    v = Violations()
    _check_table(v, table, id_attribute)
    _check_features(v, table, encoding.features, reserved={id_attribute: "the customer id"})
    v.raise_if_any()
    ids, values, display = _encode(v, table, encoding, id_attribute)
    v.raise_if_any()
    return TrainingData(customer_ids=ids, encoding=encoding, values=values, labels=(), display_values=display)


def _check_table(v: Violations, table: SnapshotTable, id_attribute: str) -> None:
    v.check(bool(table.rows), "rows", "must hold at least one customer")
    v.check(len(set(table.columns)) == len(table.columns), "columns", "must not repeat a column")
    v.check(all(len(row) == len(table.columns) for row in table.rows), "rows",
            "every row must hold one cell per column")
    if v.check(bool(id_attribute), "id_attribute", "is required: name the column holding the customer id"):
        v.check(id_attribute in table.columns, "id_attribute", f"names no column of the data ({id_attribute!r})")


def _check_features(v: Violations, table: SnapshotTable, features: Sequence[FeatureSpec],
                    reserved: dict[str, str]) -> None:
    names = [f.name for f in features]
    if not v.check(bool(names), "features", "is required: name at least one feature"):
        return
    v.check(len(names) <= MAX_FEATURES, "features", f"must name at most {MAX_FEATURES} features")
    v.check(len(set(names)) == len(names), "features", "must not name a feature twice")
    unknown = [n for n in names if n not in table.columns]
    v.check(not unknown, "features", f"names no column of the data: {', '.join(map(repr, unknown))}")
    for name in names:
        if name in reserved:
            v.add("features", f"must not include {name!r}: it is {reserved[name]}, "
                              "so the model would learn the answer instead of the customer")
    v.check(all(f.kind in (FeatureKind.NUMERIC, FeatureKind.CATEGORICAL) for f in features), "features",
            "every feature's kind must be NUMERIC or CATEGORICAL")


def _is_missing(cell: object) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip()) or (
        isinstance(cell, float) and math.isnan(cell))


def _fit_encoding(table: SnapshotTable, features: tuple[FeatureSpec, ...]) -> Encoding:
    index = {c: i for i, c in enumerate(table.columns)}
    categories: list[tuple[str, ...]] = []
    columns: list[str] = []
    for feature in features:
        if feature.kind == FeatureKind.CATEGORICAL:
            seen = sorted({str(row[index[feature.name]]).strip() for row in table.rows
                           if not _is_missing(row[index[feature.name]])})
            categories.append(tuple(seen))
            columns.extend(f"{feature.name}={c}" for c in seen)
        else:
            columns.append(feature.name)
    return Encoding(features=features, categories=tuple(categories), columns=tuple(columns))


def _encode(v: Violations, table: SnapshotTable, encoding: Encoding, id_attribute: str
            ) -> tuple[tuple[str, ...], tuple[tuple[float, ...], ...], tuple[tuple[str, ...], ...]]:
    index = {c: i for i, c in enumerate(table.columns)}
    id_index = index[id_attribute]
    ids = tuple(str(row[id_index]).strip() for row in table.rows)
    v.check(all(ids), "rows", f"every row needs a customer id in {id_attribute!r}")
    v.check(len(set(ids)) == len(ids), "rows", f"must not repeat a customer id in {id_attribute!r}")
    bad_cells = 0
    values: list[tuple[float, ...]] = []
    display: list[tuple[str, ...]] = []
    for r, row in enumerate(table.rows):
        encoded: list[float] = []
        shown: list[str] = []
        categorical = iter(encoding.categories)
        for feature in encoding.features:
            cell = row[index[feature.name]]
            shown.append("" if _is_missing(cell) else str(cell).strip())
            if feature.kind == FeatureKind.CATEGORICAL:
                category = shown[-1]
                encoded.extend(1.0 if category == c else 0.0 for c in next(categorical))
                continue
            number = _number(cell)
            if number is None:
                bad_cells += 1
                if bad_cells <= MAX_CELL_VIOLATIONS:
                    v.add(f"rows[{r}].{feature.name}", "must be a finite number or empty")
                number = math.nan
            encoded.append(number)
        values.append(tuple(encoded))
        display.append(tuple(shown))
    return ids, tuple(values), tuple(display)


def _number(cell: object) -> float | None:
    """The cell as a float (NaN when missing); None when it is not a finite number."""
    if _is_missing(cell):
        return math.nan
    try:
        number = float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _labels(v: Violations, table: SnapshotTable, label_attribute: str) -> tuple[int, ...]:
    column = table.columns.index(label_attribute)
    labels: list[int] = []
    bad = 0
    for r, row in enumerate(table.rows):
        text = str(row[column]).strip().lower() if not _is_missing(row[column]) else ""
        if text in _TRUE or text in _FALSE:
            labels.append(1 if text in _TRUE else 0)
            continue
        bad += 1
        if bad <= MAX_CELL_VIOLATIONS:
            v.add(f"rows[{r}].{label_attribute}", "the label must be 1/0, true/false or yes/no")
        labels.append(0)
    return tuple(labels)


def _groups(v: Violations, table: SnapshotTable, groups: GroupAttributes
            ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    result: list[tuple[str, tuple[str, ...]]] = []
    for dimension, column in (("age_band", groups.age), ("gender", groups.gender), ("region", groups.region)):
        if not column:
            continue
        i = table.columns.index(column)
        cells = [row[i] for row in table.rows]
        if dimension == "age_band":
            ages = [_number(c) for c in cells]
            if not v.check(all(a is not None for a in ages), "groups.age",
                           f"column {column!r} must hold numbers or be empty"):
                continue
            result.append((dimension, tuple(age_band(a) for a in ages)))
        else:
            result.append((dimension, tuple(UNKNOWN_GROUP if _is_missing(c) else str(c).strip() for c in cells)))
    return tuple(result)


# --- histories -----------------------------------------------------------------------------


def history_training_data(events: Iterable[Event], *, window: Window, features: Sequence[str],
                          label: HistoryLabel, balance_share: float = 0.5,
                          external: Sequence[ExternalFeature] = ()) -> TrainingData:
    """Labelled training data from event histories, one row per customer active before the cutoff.

    Customers who closed everything before the cutoff are left out: they are already gone, so
    there is nothing to predict. InvalidArgument for a bad window or feature list, or for an
    external feature known at or after the cutoff (future data)."""
    events = tuple(events)
    v = Violations()
    _check_window(v, window, events)
    external_names = sorted({f.name for f in external})
    _check_history_features(v, features, external_names)
    v.check(0 < balance_share < 1, "balance_share", "must be between 0 and 1 (exclusive)")
    v.check(label in set(HistoryLabel), "label", "must be FULL_ATTRITION, BALANCE_ATTRITION or DORMANCY")
    for i, feature in enumerate(external):
        if feature.observed_at.tzinfo is None:
            v.add(f"external[{i}].observed_at", "must be timezone-aware")
        elif feature.observed_at >= window.cutoff:
            v.add(f"external[{i}].observed_at",
                  f"is at or after the cutoff: {feature.name!r} would leak the prediction window into the features")
    v.raise_if_any()

    past: dict[str, list[Event]] = defaultdict(list)
    future: dict[str, list[Event]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.customer_id, e.time)):
        if event.time < window.cutoff:
            past[event.customer_id].append(event)
        elif event.time < window.prediction_end:
            future[event.customer_id].append(event)
    customers = sorted(c for c, history in past.items() if not any(e.kind == CLOSED_ALL for e in history))
    known = _latest_external(external)

    values: list[tuple[float, ...]] = []
    labels: list[int] = []
    for customer in customers:
        # Only `past` reaches a feature: the prediction window's events are not in scope here.
        computed = _history_features(past[customer], window)
        row = [computed[f] if f in computed else _kind_feature(f, past[customer], window)
               if _KIND_FEATURE.fullmatch(f) else known.get((customer, f), math.nan) for f in features]
        values.append(tuple(row))
        labels.append(_history_label(label, past[customer], future[customer], window, balance_share))
    encoding = Encoding(features=tuple(FeatureSpec(f) for f in features), categories=(), columns=tuple(features))
    display = tuple(tuple(_shown(x) for x in row) for row in values)
    return TrainingData(customer_ids=tuple(customers), encoding=encoding, values=tuple(values),
                        labels=tuple(labels), display_values=display)


def _check_window(v: Violations, window: Window, events: tuple[Event, ...]) -> None:
    stamps = (window.observation_start, window.cutoff, window.prediction_end)
    if not v.check(all(s.tzinfo is not None for s in stamps), "window", "every bound must be timezone-aware"):
        return
    v.check(window.observation_start < window.cutoff, "window.cutoff", "must be after observation_start")
    v.check(window.cutoff < window.prediction_end, "window.prediction_end",
            "must be after the cutoff: the prediction window must not overlap the observation window")
    v.check(bool(events), "events", "must hold at least one event")
    v.check(all(e.time.tzinfo is not None for e in events), "events", "every event time must be timezone-aware")
    v.check(all(math.isfinite(e.amount) for e in events), "events", "every amount must be a finite number")


def _check_history_features(v: Violations, features: Sequence[str], external_names: list[str]) -> None:
    if not v.check(bool(features), "features", "is required: name at least one feature"):
        return
    v.check(len(features) <= MAX_FEATURES, "features", f"must name at most {MAX_FEATURES} features")
    v.check(len(set(features)) == len(features), "features", "must not name a feature twice")
    unknown = [f for f in features
               if f not in HISTORY_FEATURES and not _KIND_FEATURE.fullmatch(f) and f not in external_names]
    v.check(not unknown, "features",
            f"unknown features {', '.join(map(repr, unknown))}: use {', '.join(HISTORY_FEATURES)}, "
            "count:<kind>, amount:<kind> or a supplied external feature")
    clash = [n for n in external_names if n in HISTORY_FEATURES or _KIND_FEATURE.fullmatch(n)]
    v.check(not clash, "external", f"must not reuse a computed feature's name: {', '.join(clash)}")


def _history_features(past: list[Event], window: Window) -> dict[str, float]:
    observed = [e for e in past if e.time >= window.observation_start]
    inflow = sum(e.amount for e in observed if e.amount > 0)
    outflow = -sum(e.amount for e in observed if e.amount < 0)
    return {
        "event_count": float(len(observed)),
        "inflow_sum": inflow,
        "outflow_sum": outflow,
        "net_flow": inflow - outflow,
        "balance_at_cutoff": sum(e.amount for e in past),
        "peak_balance": _peak_balance(past, window),
        "days_since_last_event": (window.cutoff - past[-1].time).total_seconds() / 86_400,
    }


def _peak_balance(past: list[Event], window: Window) -> float:
    """The highest running balance inside the observation window (the balance it opened with counts)."""
    balance = sum(e.amount for e in past if e.time < window.observation_start)
    peak = balance
    for event in past:
        if event.time >= window.observation_start:
            balance += event.amount
            peak = max(peak, balance)
    return peak


def _kind_feature(name: str, past: list[Event], window: Window) -> float:
    match = _KIND_FEATURE.fullmatch(name)
    assert match is not None
    measure, kind = match.groups()
    observed = [e for e in past if e.time >= window.observation_start and e.kind == kind]
    return float(len(observed)) if measure == "count" else sum(e.amount for e in observed)


def _latest_external(external: Sequence[ExternalFeature]) -> dict[tuple[str, str], float]:
    latest: dict[tuple[str, str], ExternalFeature] = {}
    for feature in external:
        key = (feature.customer_id, feature.name)
        if key not in latest or feature.observed_at > latest[key].observed_at:
            latest[key] = feature
    return {key: f.value for key, f in latest.items()}


def _history_label(label: HistoryLabel, past: list[Event], future: list[Event], window: Window,
                   share: float) -> int:
    if label == HistoryLabel.FULL_ATTRITION:
        return int(any(e.kind == CLOSED_ALL for e in future))
    if label == HistoryLabel.DORMANCY:
        return int(not future)
    peak = _peak_balance(past, window)
    final = sum(e.amount for e in past) + sum(e.amount for e in future)
    return int(peak > 0 and final < share * peak)


def _shown(value: float) -> str:
    return "" if math.isnan(value) else f"{value:g}"
