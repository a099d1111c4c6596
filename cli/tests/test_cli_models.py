"""`crm models` against a real risk process: a model trained from the command line (an operation in a
worker process) is a candidate with metrics and fairness, cannot be promoted by who trained it, is
promoted by a second risk officer with `--as`, replaced by a newer one and rolled back; bad input
exits 1 naming the field with nothing registered, bad arguments exit 2, a service down exits 1."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from crmkit.testing import free_port, shared_data_dir

pytestmark = pytest.mark.slow

FEATURES = ("CreditScore", "Geography", "Gender", "Age", "Tenure", "Balance", "NumOfProducts", "IsActiveMember")


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _slice(directory: Path, name: str, rows: int) -> str:
    """The first `rows` customers of the bank churn file, in risk's training directory."""
    source = shared_data_dir("Churn_Modelling.csv") / "Churn_Modelling.csv"
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        kept = [row for _, row in zip(range(rows + 1), reader, strict=False)]
    with (directory / name).open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)
    return name


def _train(crm_risk: Any, snapshot: str, *extra: str) -> Any:
    args = ["models", "train", "--snapshot", snapshot, "--label", "Exited", "--id-column", "CustomerId",
            "--categorical", "Geography", "--categorical", "Gender", "--age-column", "Age", "--gender-column",
            "Gender", "--region-column", "Geography", "--hyperparameter", "max_iter=40", "--seed", "7",
            "--as", "ro-trainer", *extra]
    for feature in FEATURES:
        args += ["--feature", feature]
    return crm_risk(*args)


def test_a_model_is_trained_promoted_by_a_second_officer_replaced_and_rolled_back(crm_risk,
                                                                                  risk_training_dir) -> None:
    first = _json(_train(crm_risk, _slice(risk_training_dir, "first.csv", 1500), "--output", "json"))
    assert first["status"] == "CHURN_MODEL_STATUS_CANDIDATE" and first["creator"] == "ro-trainer"
    assert 0.5 < first["metrics"]["roc_auc"] <= 1 and first["fairness"]["groups"]
    model_id = first["churn_model_id"]

    shown = crm_risk("models", "show", model_id)
    assert shown.exit_code == 0, shown.output
    assert "ROC AUC" in shown.stdout and "Fairness" in shown.stdout and "Geography" in shown.stdout
    listed = _json(crm_risk("models", "list", "--status", "candidate", "--output", "json"))
    assert model_id in [m["churn_model_id"] for m in listed]

    own = crm_risk("models", "promote", model_id, "--reason", "looks good", "--as", "ro-trainer")
    assert own.exit_code == 1 and "PERMISSION_DENIED" in own.output
    assert crm_risk("models", "promote", model_id, "--reason", "  ", "--as", "ro-reviewer").exit_code == 2
    promoted = _json(crm_risk("models", "promote", model_id, "--reason", "AUC and fairness checked",
                              "--as", "ro-reviewer", "--output", "json"))
    assert promoted["status"] == "CHURN_MODEL_STATUS_ACTIVE" and promoted["promoter"] == "ro-reviewer"
    assert promoted["previous_model"] == ""
    assert _json(crm_risk("models", "show", "active", "--output", "json"))["churn_model_id"] == model_id

    second = _json(_train(crm_risk, _slice(risk_training_dir, "second.csv", 1200), "--output", "json"))
    replaced = crm_risk("models", "promote", second["churn_model_id"], "--reason", "newer data",
                        "--as", "ro-reviewer")
    assert replaced.exit_code == 0 and f"replacing churnModels/{model_id}" in replaced.stdout

    active_retire = crm_risk("models", "retire", second["churn_model_id"], "--reason", "drifted")
    assert active_retire.exit_code == 1 and "FAILED_PRECONDITION" in active_retire.output
    rolled = _json(crm_risk("models", "rollback", "--reason", "scores drifted", "--as", "ro-reviewer",
                            "--output", "json"))
    assert rolled["churn_model_id"] == model_id and rolled["previous_model"] == second["name"]
    retired = _json(crm_risk("models", "show", second["churn_model_id"], "--output", "json"))
    assert retired["status"] == "CHURN_MODEL_STATUS_RETIRED"
    table = crm_risk("models", "list")
    assert table.exit_code == 0 and model_id in table.stdout and "active" in table.stdout


def test_bad_input_exits_1_naming_the_field_and_registers_nothing(crm_risk) -> None:
    before = _json(crm_risk("models", "list", "--limit", "10000", "--output", "json"))
    refused = crm_risk("models", "train", "--snapshot", "../etc/passwd", "--id-column", "CustomerId")
    assert refused.exit_code == 1 and "INVALID_ARGUMENT" in refused.output
    assert "spec.label_attribute" in refused.output and "spec.features" in refused.output
    assert _json(crm_risk("models", "list", "--limit", "10000", "--output", "json")) == before
    missing = crm_risk("models", "show", "no-such-model")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
    assert crm_risk("models", "train").exit_code == 2
    assert crm_risk("models", "train", "--snapshot", "a.csv", "--algorithm", "magic").exit_code == 2
    assert crm_risk("models", "train", "--snapshot", "a.csv", "--hyperparameter", "max_iter").exit_code == 2
    assert crm_risk("models", "list", "--status", "sleeping").exit_code == 2


def test_a_risk_service_down_exits_1(crm_risk) -> None:
    down = crm_risk("models", "list", "--target", f"127.0.0.1:{free_port()}")
    assert down.exit_code == 1 and "UNAVAILABLE" in down.output
