"""Churn training data: the snapshot builder's encoding and bad input, and the history builder's
windows, with a planted leak that must not reach a feature."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from crm_risk.churn import features
from crm_risk.churn.model import (
    Event,
    ExternalFeature,
    FeatureKind,
    FeatureSpec,
    GroupAttributes,
    HistoryLabel,
    SnapshotTable,
    Window,
)
from crmkit.errors import InvalidArgument

COLUMNS = ("id", "age", "country", "balance", "churned")
ROWS = (
    ("a", "25", "FR", "100.5", "1"),
    ("b", "41", "DE", "", "0"),
    ("c", "67", "FR", "0", "yes"),
    ("d", "", "", "7", "false"),
)
TABLE = SnapshotTable(columns=COLUMNS, rows=ROWS)
SPECS = (FeatureSpec("age"), FeatureSpec("country", FeatureKind.CATEGORICAL), FeatureSpec("balance"))


def bad_fields(call, *args, **kwargs) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as caught:
        call(*args, **kwargs)
    return {v.field: v.description for v in caught.value.violations}


def snapshot(table: SnapshotTable = TABLE, specs: tuple[FeatureSpec, ...] = SPECS, label: str = "churned"):  # type: ignore[no-untyped-def]
    return features.snapshot_training_data(table, features=specs, label_attribute=label, id_attribute="id",
                                           groups=GroupAttributes(age="age", region="country"))


def test_snapshot_is_one_hot_encoded_with_missing_values_kept_missing() -> None:
    data = snapshot()

    assert data.encoding.columns == ("age", "country=DE", "country=FR", "balance")
    assert data.customer_ids == ("a", "b", "c", "d")
    assert data.labels == (1, 0, 1, 0)
    assert data.values[0] == (25.0, 0.0, 1.0, 100.5)
    assert math.isnan(data.values[1][3])
    # No country: none of its columns set, not a made-up category.
    assert data.values[3][1:3] == (0.0, 0.0)
    assert dict(data.groups) == {"age_band": ("<30", "40-49", "60+", "unknown"),
                                 "region": ("FR", "DE", "FR", "unknown")}
    assert data.display_values[1] == ("41", "DE", "")


def test_scoring_data_uses_the_training_categories_and_ignores_unseen_ones() -> None:
    encoding = snapshot().encoding
    new = SnapshotTable(columns=COLUMNS[:4], rows=(("x", "30", "ES", "1"), ("y", "50", "DE", "2")))

    data = features.snapshot_scoring_data(new, encoding=encoding, id_attribute="id")

    assert data.encoding == encoding
    assert data.values == ((30.0, 0.0, 0.0, 1.0), (50.0, 1.0, 0.0, 2.0))
    assert data.labels == ()


def test_unknown_feature_label_as_feature_and_unknown_label_are_named() -> None:
    fields = bad_fields(snapshot, specs=(FeatureSpec("age"), FeatureSpec("income"), FeatureSpec("churned")),
                        label="exited")

    assert "'income'" in fields["features"] and "'churned'" not in fields["features"].split(":")[1]
    assert fields["label_attribute"] == "names no column of the data ('exited')"

    fields = bad_fields(snapshot, specs=(FeatureSpec("age"), FeatureSpec("churned")))
    assert "the label" in fields["features"]


def test_empty_data_and_no_features_are_bad_input() -> None:
    fields = bad_fields(snapshot, table=SnapshotTable(columns=COLUMNS, rows=()), specs=())

    assert fields["rows"] == "must hold at least one customer"
    assert fields["features"].startswith("is required")


def test_bad_cells_and_labels_name_the_row_and_column() -> None:
    rows = (("a", "old", "FR", "1", "1"), ("b", "40", "FR", "inf", "maybe"), ("a", "1", "FR", "1", "0"))

    fields = bad_fields(snapshot, table=SnapshotTable(columns=COLUMNS, rows=rows))

    assert set(fields) >= {"rows[0].age", "rows[1].balance", "rows[1].churned", "rows"}
    assert "repeat a customer id" in fields["rows"]


# --- histories -----------------------------------------------------------------------------

CUTOFF = datetime(2025, 1, 1, tzinfo=UTC)
WINDOW = Window(observation_start=CUTOFF - timedelta(days=180), cutoff=CUTOFF,
                prediction_end=CUTOFF + timedelta(days=90))
HISTORY_FEATURES = ("event_count", "inflow_sum", "outflow_sum", "net_flow", "balance_at_cutoff",
                    "peak_balance", "days_since_last_event", "count:withdrawal", "amount:withdrawal")


def planted_leak_histories(customers: int = 400, seed: int = 7) -> tuple[list[Event], set[str]]:
    """Random, label-free histories before the cutoff; churners empty their account just after
    it, then close everything. The prediction window's events are a perfect churn signal, so a
    feature that sees any of them gives itself away."""
    rng = random.Random(seed)
    events: list[Event] = []
    churners: set[str] = set()
    for c in range(customers):
        customer = f"c{c:04d}"
        events.append(Event(customer, WINDOW.observation_start - timedelta(days=30), "deposit", 10_000.0))
        for _ in range(rng.randint(3, 12)):
            when = WINDOW.observation_start + timedelta(days=rng.uniform(0, 179.9))
            kind, amount = rng.choice((("deposit", rng.uniform(100, 2_000)), ("withdrawal", -rng.uniform(100, 2_000))))
            events.append(Event(customer, when, kind, amount))
        if rng.random() < 0.3:
            churners.add(customer)
            events.append(Event(customer, CUTOFF + timedelta(hours=1), "withdrawal", -1_000_000.0))
            events.append(Event(customer, CUTOFF + timedelta(days=2), "closed_all"))
        else:
            events.append(Event(customer, CUTOFF + timedelta(days=rng.uniform(0, 80)), "deposit", 50.0))
    return events, churners


def column_aucs(data, labels) -> dict[str, float]:  # type: ignore[no-untyped-def]
    values = np.asarray(data.values)
    return {name: roc_auc_score(labels, values[:, i]) for i, name in enumerate(data.encoding.columns)}


def test_planted_leak_in_the_prediction_window_never_reaches_a_feature() -> None:
    events, churners = planted_leak_histories()

    data = features.history_training_data(events, window=WINDOW, features=HISTORY_FEATURES,
                                          label=HistoryLabel.FULL_ATTRITION)

    assert {c for c, y in zip(data.customer_ids, data.labels, strict=True) if y} == churners
    # The features are exactly those of the history cut at the cutoff...
    cut = features.history_training_data([e for e in events if e.time < CUTOFF], window=WINDOW,
                                         features=HISTORY_FEATURES, label=HistoryLabel.FULL_ATTRITION)
    assert cut.values == data.values
    # ...so no feature separates churners better than chance would on 400 customers.
    aucs = column_aucs(data, data.labels)
    assert all(0.35 < auc < 0.65 for auc in aucs.values()), aucs


def test_the_leak_check_catches_features_that_see_one_hour_past_the_cutoff() -> None:
    """The negative control: a feature window reaching one day into the prediction window sees the
    churners' planted withdrawal, and the AUC bound the test above holds is broken by far."""
    events, churners = planted_leak_histories()
    leaky = Window(WINDOW.observation_start, CUTOFF + timedelta(days=1), WINDOW.prediction_end)

    data = features.history_training_data(events, window=leaky, features=("outflow_sum",),
                                          label=HistoryLabel.FULL_ATTRITION)

    labels = [int(c in churners) for c in data.customer_ids]
    assert sum(labels) == len(churners)
    assert column_aucs(data, labels)["outflow_sum"] > 0.95


def test_external_feature_known_after_the_cutoff_is_rejected() -> None:
    events, _ = planted_leak_histories(customers=20)
    external = [
        ExternalFeature("c0000", "nps", 9.0, CUTOFF - timedelta(days=3)),
        ExternalFeature("c0001", "nps", 2.0, CUTOFF + timedelta(days=10)),
    ]

    fields = bad_fields(features.history_training_data, events, window=WINDOW, features=("event_count", "nps"),
                        label=HistoryLabel.FULL_ATTRITION, external=external)

    assert set(fields) == {"external[1].observed_at"}
    assert "leak" in fields["external[1].observed_at"]


def test_external_features_known_before_the_cutoff_are_used_latest_first() -> None:
    events, _ = planted_leak_histories(customers=3)
    external = [ExternalFeature("c0000", "nps", 3.0, CUTOFF - timedelta(days=30)),
                ExternalFeature("c0000", "nps", 9.0, CUTOFF - timedelta(days=3))]

    data = features.history_training_data(events, window=WINDOW, features=("nps",),
                                          label=HistoryLabel.FULL_ATTRITION, external=external)

    assert data.values[0] == (9.0,)
    assert math.isnan(data.values[1][0])


def test_history_features_and_labels_on_a_hand_made_history() -> None:
    start = WINDOW.observation_start
    events = [
        Event("k", start - timedelta(days=1), "deposit", 1_000.0),  # opening balance, before the window
        Event("k", start + timedelta(days=10), "deposit", 500.0),
        Event("k", start + timedelta(days=170), "withdrawal", -300.0),
        Event("k", CUTOFF + timedelta(days=5), "withdrawal", -1_000.0),  # prediction window
        Event("gone", start + timedelta(days=1), "closed_all"),  # churned before the cutoff
    ]
    names = (*HISTORY_FEATURES, "count:deposit")

    full = features.history_training_data(events, window=WINDOW, features=names, label=HistoryLabel.FULL_ATTRITION)
    balance = features.history_training_data(events, window=WINDOW, features=names,
                                             label=HistoryLabel.BALANCE_ATTRITION)
    dormancy = features.history_training_data(events, window=WINDOW, features=names, label=HistoryLabel.DORMANCY)

    assert full.customer_ids == ("k",)
    assert dict(zip(names, full.values[0], strict=True)) == {
        "event_count": 2.0, "inflow_sum": 500.0, "outflow_sum": 300.0, "net_flow": 200.0,
        "balance_at_cutoff": 1_200.0, "peak_balance": 1_500.0, "days_since_last_event": 10.0,
        "count:withdrawal": 1.0, "amount:withdrawal": -300.0, "count:deposit": 1.0}
    # 200 left of a 1,500 peak is below half; no closure; there was activity.
    assert (full.labels, balance.labels, dormancy.labels) == ((0,), (1,), (0,))


def test_a_window_that_leaks_and_unknown_history_features_are_bad_input() -> None:
    events, _ = planted_leak_histories(customers=3)
    overlapping = Window(WINDOW.observation_start, CUTOFF, CUTOFF - timedelta(days=1))

    fields = bad_fields(features.history_training_data, events, window=overlapping,
                        features=("event_count", "salary"), label=HistoryLabel.DORMANCY)

    assert "must not overlap" in fields["window.prediction_end"]
    assert "'salary'" in fields["features"]
    naive = Window(datetime(2024, 7, 1), datetime(2025, 1, 1), datetime(2025, 4, 1))
    assert "window" in bad_fields(features.history_training_data, events, window=naive,
                                  features=("event_count",), label=HistoryLabel.DORMANCY)
