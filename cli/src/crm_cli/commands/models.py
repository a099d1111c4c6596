"""`crm models ...`: a risk officer's churn model registry over risk's gRPC contract: list, show,
train (an operation), promote as a second person, retire and roll back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
from google.protobuf import json_format
from rich.table import Table

from crm.common.v1 import operation_pb2
from crm.risk.v1 import churn_model_pb2, risk_service_pb2, risk_service_pb2_grpc
from crm_cli import calls, output, progress
from crm_cli.operations import SERVICES, summary, watch
from crm_cli.options import output_option, service_options
from crm_cli.proto_values import choices as _names
from crm_cli.proto_values import label as _label
from crmkit.auth import Role

CALL_TIMEOUT_SECONDS = 30.0


STATUSES = _names(churn_model_pb2.ChurnModelStatus, "CHURN_MODEL_STATUS_")
ALGORITHMS = _names(churn_model_pb2.ModelAlgorithm, "MODEL_ALGORITHM_")


def model_name(value: str) -> str:
    return value if value.startswith("churnModels/") else f"churnModels/{value}"


def _status(model: churn_model_pb2.ChurnModel) -> str:
    return _label(churn_model_pb2.ChurnModelStatus, "CHURN_MODEL_STATUS_", model.status)


def _algorithm(model: churn_model_pb2.ChurnModel) -> str:
    return _label(churn_model_pb2.ModelAlgorithm, "MODEL_ALGORITHM_", model.training_spec.algorithm)


def _stub_call(target: str | None, data_dir: Path,
               call: Callable[[risk_service_pb2_grpc.RiskServiceStub, calls.Metadata], Any],
               *, as_subject: str | None = None) -> Any:
    return calls.call_service("risk", risk_service_pb2_grpc.RiskServiceStub, target, data_dir, call,
                              as_subject=as_subject, role=Role.RISK_OFFICER)


def _as_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--as", "as_subject", metavar="SUBJECT",
                        help="Act as this person (a one-hour risk officer token for SUBJECT) instead of "
                             "CRM_TOKEN or the local admin token.")(function)


def _when(model: churn_model_pb2.ChurnModel, field: Literal["create_time", "promote_time", "retire_time"]) -> str:
    return getattr(model, field).ToJsonString() if model.HasField(field) else "-"


def _show_model(model: churn_model_pb2.ChurnModel, output_format: str) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(model))
        return
    console = output.console()
    m = model.metrics
    about = Table(title=f"{model.name} (version {model.version})", show_header=False)
    about.add_column("Field", style="cyan", no_wrap=True)
    about.add_column("Value", overflow="fold")
    for field, value in (
            ("status", _status(model) + (f" ({model.status_reason})" if model.status_reason else "")),
            ("algorithm", _algorithm(model)),
            ("trained by", f"{model.creator} at {_when(model, 'create_time')}"),
            ("promoted by", f"{model.promoter} at {_when(model, 'promote_time')}" if model.promoter else "-"),
            ("retired", _when(model, "retire_time")),
            ("ROC AUC", f"{m.roc_auc:.3f}"), ("PR AUC", f"{m.pr_auc:.3f}"), ("Brier score", f"{m.brier_score:.4f}"),
            ("log loss", f"{m.log_loss:.4f}"), ("top-decile lift", f"{m.top_decile_lift:.2f}"),
            ("positive rate", f"{m.positive_rate:.1%}"),
            ("rows", f"{m.training_rows:,} training, {m.validation_rows:,} validation"),
            ("risk bands", f"medium from {model.band_thresholds.medium_min_probability:.2f}, "
                           f"high from {model.band_thresholds.high_min_probability:.2f}"),
            ("training data sha256", model.training_data_sha256 or "-"),
            ("operation", model.training_operation or "-")):
        about.add_row(field, value)
    console.print(about)
    if model.features:
        features = Table(title="Feature importance", show_header=True, header_style="bold")
        features.add_column("Feature")
        features.add_column("Importance", justify="right")
        for f in sorted(model.features, key=lambda f: -f.importance):
            features.add_row(f.name, f"{f.importance:.4f}")
        console.print(features)
    if model.fairness.groups:
        fairness = Table(title=f"Fairness (ratio threshold {model.fairness.threshold:.2f}, "
                               f"worst ratio {model.fairness.ratio:.2f})", show_header=True, header_style="bold")
        for column in ("Dimension", "Group", "Count", "Outcome rate", "Selection rate", "Selection ratio",
                       "TPR ratio", "Flag"):
            fairness.add_column(column)
        for g in model.fairness.groups:
            tpr = f"{g.true_positive_rate_ratio:.2f}" if g.HasField("true_positive_rate_ratio") else "-"
            flag = "FLAGGED" if g.flagged else ("small sample" if g.small_sample else "")
            fairness.add_row(g.dimension, g.group, f"{g.count:,}", f"{g.outcome_rate:.1%}", f"{g.selection_rate:.1%}",
                             f"{g.selection_rate_ratio:.2f}", tpr, flag, style="red" if g.flagged else None)
        console.print(fairness)


async def _list(stub: Any, metadata: calls.Metadata, *, status: Any = 0, algorithm: Any = 0,
                limit: int = 10_000) -> list[churn_model_pb2.ChurnModel]:
    found: list[churn_model_pb2.ChurnModel] = []
    token = ""
    while len(found) < limit:
        reply = await stub.ListChurnModels(risk_service_pb2.ListChurnModelsRequest(
            page_size=min(1000, limit - len(found)), page_token=token, status=status, algorithm=algorithm),
            metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        found += reply.churn_models
        token = reply.next_page_token
        if not token:
            break
    return found[:limit]


@click.group("models")
def models_group() -> None:
    """Churn models for risk officers: the registry, training as an operation, promotion by a second
    person, retirement and roll-back.

    Calls carry CRM_TOKEN, else a one-hour admin token minted with the local secret; `--as SUBJECT`
    acts as another risk officer (a model is promoted by someone other than who trained it).
    """


@models_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only models in this status.")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), help="Only models of this algorithm.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True)
@output_option("table", "json")
@service_options
def list_models(status: str | None, algorithm: str | None, limit: int, output_format: str, target: str | None,
                data_dir: Path) -> None:
    """The registry, newest version first, with each model's status and headline metrics.

    \b
    Example:
      crm models list --status candidate
      crm models list --output json
    """
    status_value = churn_model_pb2.ChurnModelStatus.Value(f"CHURN_MODEL_STATUS_{status.upper()}") if status else 0
    algorithm_value = churn_model_pb2.ModelAlgorithm.Value(f"MODEL_ALGORITHM_{algorithm.upper()}") if algorithm else 0
    found = _stub_call(target, data_dir, lambda stub, metadata: _list(
        stub, metadata, status=status_value, algorithm=algorithm_value, limit=limit))
    if output_format == "json":
        output.print_json([output.message_to_dict(m) for m in found])
        return
    table = Table(title=f"{len(found)} churn model(s)", show_header=True, header_style="bold")
    for column in ("Model", "Version", "Status", "Algorithm", "ROC AUC", "Lift", "Fairness", "Trained by",
                   "Trained at"):
        table.add_column(column, overflow="fold")
    for m in found:
        flagged = any(g.flagged for g in m.fairness.groups)
        table.add_row(m.churn_model_id, str(m.version), _status(m), _algorithm(m), f"{m.metrics.roc_auc:.3f}",
                      f"{m.metrics.top_decile_lift:.2f}", "flagged" if flagged else "ok", m.creator,
                      _when(m, "create_time"), style="bold" if m.status == churn_model_pb2.CHURN_MODEL_STATUS_ACTIVE
                      else None)
    output.console().print(table)


@models_group.command("show")
@click.argument("model_id")
@output_option("table", "json")
@service_options
def show(model_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """One model: status, metrics, risk bands, feature importance and the fairness report by group.
    `active` shows the model scoring customers now.

    \b
    Example:
      crm models show active
      crm models show 0b6f4c1e-... --output json
    """
    request = risk_service_pb2.GetChurnModelRequest(name=model_name(model_id))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.GetChurnModel(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    _show_model(reply.churn_model, output_format)


def _hyperparameters(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key.strip():
            output.fail(f"--hyperparameter {value!r}: give NAME=VALUE", code=2)
        parsed[key.strip()] = setting.strip()
    return parsed


@models_group.command("train")
@click.option("--spec", "spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A TrainingSpec as JSON (proto field names); options given as well override it.")
@click.option("--snapshot", help="A CSV file in the risk service's training directory (CRM_RISK_TRAINING_DIR).")
@click.option("--label", help="The snapshot's churn label column (1 churned, 0 stayed).")
@click.option("--id-column", help="The snapshot's customer id column.")
@click.option("--feature", "features", multiple=True, help="A column to learn from; repeat the option.")
@click.option("--categorical", multiple=True, help="A feature to one-hot encode; repeat the option.")
@click.option("--age-column", help="Age column, for the fairness report by age band.")
@click.option("--gender-column", help="Gender column, for the fairness report.")
@click.option("--region-column", help="Region column, for the fairness report.")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), help="Default gradient_boosting.")
@click.option("--hyperparameter", "hyperparameters", multiple=True, metavar="NAME=VALUE",
              help="A setting of the algorithm; repeat the option.")
@click.option("--seed", type=int, help="Random seed, for a reproducible model.")
@click.option("--description", help="What this model is for.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the training to its end.")
@click.option("--timeout", type=click.FloatRange(min=1), default=900.0, show_default=True,
              help="Seconds to follow it; it goes on in the service after that.")
@output_option("table", "json")
@_as_option
@service_options
def train(spec_file: Path | None, snapshot: str | None, label: str | None, id_column: str | None,
          features: tuple[str, ...], categorical: tuple[str, ...], age_column: str | None, gender_column: str | None,
          region_column: str | None, algorithm: str | None, hyperparameters: tuple[str, ...], seed: int | None,
          description: str | None, wait: bool, timeout: float, output_format: str, as_subject: str | None,
          target: str | None, data_dir: Path) -> None:
    """Train a churn model in a worker process (an operation, with its progress on stderr); it is
    registered as a CANDIDATE with its metrics and fairness report, to be promoted by someone else.

    \b
    Example:
      crm models train --snapshot Churn_Modelling.csv --label Exited --id-column CustomerId \\
          --feature CreditScore --feature Geography --feature Age --feature Balance \\
          --categorical Geography --region-column Geography --age-column Age --seed 7
      crm models train --spec spec.json --no-wait

    Exit status: 0 trained (or started, with --no-wait), 1 refused or failed (field and rule printed),
    2 bad arguments.
    """
    spec = churn_model_pb2.TrainingSpec()
    if spec_file is not None:
        try:
            json_format.Parse(spec_file.read_text(encoding="utf-8"), spec)
        except json_format.ParseError as exc:
            output.fail(f"{spec_file}: {exc}", code=2)
    elif snapshot is None:
        output.fail("give --snapshot (with --label, --id-column and --feature) or --spec", code=2)
    if not spec.data_mode:
        spec.data_mode = churn_model_pb2.TRAINING_DATA_MODE_SNAPSHOT
    if not spec.algorithm or algorithm:
        spec.algorithm = churn_model_pb2.ModelAlgorithm.Value(
            f"MODEL_ALGORITHM_{(algorithm or 'gradient_boosting').upper()}")
    for value, field in ((snapshot, "file"), (id_column, "id_attribute"), (age_column, "age_attribute"),
                         (gender_column, "gender_attribute"), (region_column, "region_attribute")):
        if value is not None:
            setattr(spec.snapshot, field, value)
    if categorical:
        del spec.snapshot.categorical_features[:]
        spec.snapshot.categorical_features.extend(categorical)
    if features:
        del spec.features[:]
        spec.features.extend(features)
    if label is not None:
        spec.label_attribute = label
    spec.hyperparameters.update(_hyperparameters(hyperparameters))
    if seed is not None:
        spec.random_seed = seed
    if description is not None:
        spec.description = description
    request = risk_service_pb2.TrainChurnModelRequest(spec=spec, request_id=str(uuid.uuid4()))
    console = output.console(stderr=True)

    async def call(stub: Any, metadata: calls.Metadata) -> operation_pb2.Operation:
        started = (await stub.TrainChurnModel(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).operation
        if not wait:
            return started
        with progress.OperationBar(console, "training") as bar:
            return await watch(SERVICES["risk"], stub, metadata=metadata, name=started.name, seconds=timeout,
                               on_update=bar.update)

    try:
        operation = _stub_call(target, data_dir, call, as_subject=as_subject)
    except TimeoutError:
        output.fail(f"still training after {timeout:.0f} s; follow it with `crm operations watch --service risk`")
    if operation.state == operation_pb2.OPERATION_STATE_FAILED:
        output.fail(output.describe_status(operation.error))
    if operation.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        if output_format == "json":
            output.print_json(summary(operation))
        else:
            output.console().print(f"{operation.name}: {operation_pb2.OperationState.Name(operation.state)}",
                                   markup=False)
        if operation.state == operation_pb2.OPERATION_STATE_CANCELLED:
            output.fail(f"{operation.name} was cancelled")
        return
    model = churn_model_pb2.ChurnModel()
    operation.response.Unpack(model)
    _show_model(model, output_format)


def _promote(model_id: str, reason: str, as_subject: str | None, target: str | None,
             data_dir: Path) -> risk_service_pb2.PromoteChurnModelResponse:
    if not reason.strip():
        output.fail("--reason must say why this model should score customers", code=2)
    request = risk_service_pb2.PromoteChurnModelRequest(name=model_name(model_id), reason=reason,
                                                        request_id=str(uuid.uuid4()))
    reply: risk_service_pb2.PromoteChurnModelResponse = _stub_call(
        target, data_dir, lambda stub, metadata: stub.PromoteChurnModel(
            request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS), as_subject=as_subject)
    return reply


def _show_promotion(reply: risk_service_pb2.PromoteChurnModelResponse, output_format: str) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(reply.churn_model) | {"previous_model": reply.previous_model})
        return
    replaced = f", replacing {reply.previous_model} (now retired)" if reply.previous_model else ""
    output.console().print(f"{reply.churn_model.name}: active{replaced}", markup=False)


@models_group.command("promote")
@click.argument("model_id")
@click.option("--reason", required=True, help="Why it should score customers, e.g. the validation it passed.")
@output_option("table", "json")
@_as_option
@service_options
def promote(model_id: str, reason: str, output_format: str, as_subject: str | None, target: str | None,
            data_dir: Path) -> None:
    """Make a candidate the active model, as a second person (not who trained it); the active model
    it replaces is retired.

    \b
    Example:
      crm models promote 0b6f4c1e-... --as ro-2001 --reason "AUC 0.86, fairness within 0.8"
      CRM_TOKEN=$(crm token --role risk_officer --subject ro-2002) crm models promote 0b6f4c1e-... --reason ok
    """
    _show_promotion(_promote(model_id, reason, as_subject, target, data_dir), output_format)


@models_group.command("retire")
@click.argument("model_id")
@click.option("--reason", required=True, help="Why it is retired.")
@output_option("table", "json")
@_as_option
@service_options
def retire(model_id: str, reason: str, output_format: str, as_subject: str | None, target: str | None,
           data_dir: Path) -> None:
    """Retire a candidate (an active model is replaced by promoting another, or by `rollback`).

    \b
    Example:
      crm models retire 0b6f4c1e-... --reason "trained on the wrong month"
    """
    if not reason.strip():
        output.fail("--reason must say why the model is retired", code=2)
    request = risk_service_pb2.RetireChurnModelRequest(name=model_name(model_id), reason=reason,
                                                       request_id=str(uuid.uuid4()))
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.RetireChurnModel(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS), as_subject=as_subject)
    if output_format == "json":
        output.print_json(output.message_to_dict(reply.churn_model))
    else:
        output.console().print(f"{reply.churn_model.name}: retired", markup=False)


@models_group.command("rollback")
@click.argument("model_id", required=False)
@click.option("--reason", required=True, help="Why the active model is rolled back.")
@output_option("table", "json")
@_as_option
@service_options
def rollback(model_id: str | None, reason: str, output_format: str, as_subject: str | None, target: str | None,
             data_dir: Path) -> None:
    """Make a previously active model active again (the newest retired one that was once promoted,
    unless MODEL_ID names another); the current active model is retired.

    \b
    Example:
      crm models rollback --reason "scores drifted after Monday's promotion"
    """
    if model_id is None:
        retired = _stub_call(target, data_dir, lambda stub, metadata: _list(
            stub, metadata, status=churn_model_pb2.CHURN_MODEL_STATUS_RETIRED))
        earlier = [m for m in retired if m.promoter]
        if not earlier:
            output.fail("no retired model was ever active: nothing to roll back to")
        model_id = max(earlier, key=lambda m: m.retire_time.ToNanoseconds()).churn_model_id
    _show_promotion(_promote(model_id, reason, as_subject, target, data_dir), output_format)
