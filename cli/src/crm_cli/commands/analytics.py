"""`crm tiers`, `crm clusters` and `crm clv`: an analyst's value tiers, k-means clusters and
customer lifetime value over segment's gRPC contract."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from google.protobuf import duration_pb2
from google.type import decimal_pb2, interval_pb2, money_pb2
from rich.table import Table

from crm.common.v1 import audit_pb2, operation_pb2
from crm.segment.v1 import analytics_pb2, classification_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_cli import calls, output
from crm_cli.operations import SERVICES, state_name, watch
from crm_cli.options import output_option, service_options
from crm_cli.proto_values import customer_name, label

CALL_TIMEOUT_SECONDS = 30.0
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_MARKETING, justification="crm analytics")


def _stub_call(target: str | None, data_dir: Path,
               call: Callable[[segment_service_pb2_grpc.SegmentServiceStub, calls.Metadata], Any]) -> Any:
    return calls.call_service("segment", segment_service_pb2_grpc.SegmentServiceStub, target, data_dir, call)


def _money(money: money_pb2.Money) -> str:
    if not money.currency_code:
        return "-"
    amount = Decimal(money.units) + Decimal(money.nanos) / Decimal(1_000_000_000)
    return f"{amount:,.2f} {money.currency_code}"


def _days(days: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(days=days))
    return duration


def _segment_name(value: str | None) -> str:
    if not value:
        return ""
    return value if value.startswith("segments/") else f"segments/{value}"


def _show(message: Any, output_format: str, *, title: str | None = None) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(message))
    else:
        output.console().print(output.message_table(message, title=title))


def _follow(start: Callable[[Any, calls.Metadata], Any], *, wait: bool, timeout: float, output_format: str,
            target: str | None, data_dir: Path,
            then: Callable[[Any, calls.Metadata, operation_pb2.Operation], Any]) -> tuple[operation_pb2.Operation, Any]:
    """Start an analytics operation, follow it (progress on stderr for people) and, once it
    succeeded, make the calls that read its result."""
    console = output.console(stderr=True)

    async def call(stub: Any, metadata: calls.Metadata) -> tuple[operation_pb2.Operation, Any]:
        started = (await start(stub, metadata)).operation
        if not wait:
            return started, None

        def update(operation: operation_pb2.Operation) -> None:
            if output_format == "table":
                console.print(f"{state_name(operation.state).lower()} {operation.progress.stage}", markup=False)

        operation = await watch(SERVICES["segment"], stub, metadata=metadata, name=started.name, seconds=timeout,
                                on_update=update)
        if operation.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
            return operation, None
        return operation, await then(stub, metadata, operation)

    try:
        operation, result = _stub_call(target, data_dir, call)
    except TimeoutError:
        output.fail(f"still running after {timeout:.0f} s; follow it with `crm operations watch --service segment`")
    if operation.state == operation_pb2.OPERATION_STATE_FAILED:
        output.fail(output.describe_status(operation.error))
    return operation, result


def _wait_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
                            help="Seconds to follow it; it goes on in the service after that.")(function)
    return click.option("--wait/--no-wait", default=True, show_default=True,
                        help="Follow the operation to its end.")(function)


# --- value tiers -------------------------------------------------------------------------------

def _tier(value: int) -> str:
    return label(classification_pb2.ValueTier, "VALUE_TIER_", value)


@click.group("tiers")
def tiers_group() -> None:
    """Value tiers: the five tier definitions with their customer counts, and one customer's tier,
    activity layer, lifecycle stage and RFM scores."""


@tiers_group.command("list")
@output_option("table", "json")
@service_options
def list_tiers(output_format: str, target: str | None, data_dir: Path) -> None:
    """The value-tier definitions in rank order (private first): thresholds and customers in each.

    \b
    Example:
      crm tiers list
      crm tiers list --output json
    """
    async def call(stub: Any, metadata: calls.Metadata) -> list[classification_pb2.ValueTierDefinition]:
        found: list[classification_pb2.ValueTierDefinition] = []
        token = ""
        while True:
            reply = await stub.ListValueTiers(segment_service_pb2.ListValueTiersRequest(
                page_size=100, page_token=token), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            found += reply.value_tiers
            token = reply.next_page_token
            if not token:
                return found

    found = _stub_call(target, data_dir, call)
    if output_format == "json":
        output.print_json([output.message_to_dict(t) for t in found])
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("Rank", "Tier", "Display name", "Min average AUM", "Min expected CLV", "Min 90-day inflow",
                   "Min products", "Customers"):
        table.add_column(column, overflow="fold")
    for t in found:
        table.add_row(str(t.rank), _tier(t.tier), t.display_name, _money(t.min_average_aum),
                      _money(t.min_expected_lifetime_value), _money(t.min_inflow_90d),
                      str(t.min_product_count or "-"), f"{t.customer_count:,}")
    output.console().print(table)


@tiers_group.command("show")
@click.argument("customer_id")
@output_option("table", "json")
@service_options
def show_classification(customer_id: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """One customer's value tier (and since when), activity layer, lifecycle stage and RFM scores.
    The read is audited (purpose marketing).

    \b
    Example:
      crm tiers show DEMO0001

    Exit status: 0 found, 1 refused (NOT_FOUND: not yet in segment's read model).
    """
    request = segment_service_pb2.GetCustomerClassificationRequest(customer=customer_name(customer_id), audit=AUDIT)
    reply = _stub_call(target, data_dir, lambda stub, metadata: stub.GetCustomerClassification(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS))
    c = reply.classification
    _show(c, output_format, title=f"{c.customer}: {_tier(c.value_tier)}")


# --- clusters ----------------------------------------------------------------------------------

def _clusters_table(run: analytics_pb2.ClusteringRun, clusters: list[analytics_pb2.Cluster]) -> Table:
    table = Table(title=f"{run.name}: {run.cluster_count} clusters of {run.customer_count:,} customers "
                        f"(silhouette {run.silhouette_score:.2f}, {run.excluded_count:,} left out)",
                  show_header=True, header_style="bold")
    for column in ("Cluster", "Label", "Customers", "Share", *run.features):
        table.add_column(column, overflow="fold")
    for c in clusters:
        means = {p.feature: p for p in c.feature_profiles}
        table.add_row(str(c.cluster_id), c.label, f"{c.size:,}", f"{c.share:.1%}",
                      *(f"{means[f].mean:,.1f} ({means[f].standardised_difference:+.1f} sd)" if f in means else "-"
                        for f in run.features))
    return table


async def _run_and_clusters(stub: Any, metadata: calls.Metadata, name: str
                            ) -> tuple[analytics_pb2.ClusteringRun, list[analytics_pb2.Cluster]]:
    run = (await stub.GetClusteringRun(segment_service_pb2.GetClusteringRunRequest(name=name), metadata=metadata,
                                       timeout=CALL_TIMEOUT_SECONDS)).clustering_run
    if run.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        return run, []
    found: list[analytics_pb2.Cluster] = []
    token = ""
    while True:
        reply = await stub.ListClusters(segment_service_pb2.ListClustersRequest(
            parent=name, page_size=100, page_token=token), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        found += reply.clusters
        token = reply.next_page_token
        if not token:
            return run, found


def _print_clusters(run: analytics_pb2.ClusteringRun, clusters: list[analytics_pb2.Cluster],
                    output_format: str) -> None:
    if output_format == "json":
        output.print_json(output.message_to_dict(run) | {"clusters": [output.message_to_dict(c) for c in clusters]})
    elif clusters:
        output.console().print(_clusters_table(run, clusters))
    else:
        output.console().print(f"{run.name}: {state_name(run.state)}", markup=False)


def _run_name(value: str) -> str:
    return value if value.startswith("clusteringRuns/") else f"clusteringRuns/{value}"


@click.group("clusters")
def clusters_group() -> None:
    """K-means clusters of customers over numeric features (each standardised), with each cluster's
    size and how its means differ from everyone's. `crm segments features` lists the features."""


@clusters_group.command("run")
@click.option("--feature", "features", multiple=True, required=True,
              help="A numeric feature to cluster on; repeat the option.")
@click.option("--k", "cluster_count", type=int, default=0, show_default=True,
              help="Number of clusters, 2 to 20; 0 chooses the best k by silhouette between --min-k and --max-k.")
@click.option("--min-k", type=int, default=0, help="With --k 0: smallest k tried (default 2).")
@click.option("--max-k", type=int, default=0, help="With --k 0: largest k tried (default 8).")
@click.option("--segment", help="Cluster only this segment's members (default everyone).")
@click.option("--seed", type=int, default=0, help="Seed for k-means++ (0: random, recorded on the run).")
@click.option("--impute", is_flag=True, help="Fill a missing feature with its median instead of leaving the "
                                             "customer out.")
@click.option("--display-name", default="Clusters from the command line", show_default=True)
@_wait_options
@output_option("table", "json")
@service_options
def run_clustering(features: tuple[str, ...], cluster_count: int, min_k: int, max_k: int, segment: str | None,
                   seed: int, impute: bool, display_name: str, wait: bool, timeout: float, output_format: str,
                   target: str | None, data_dir: Path) -> None:
    """Start a clustering run, follow it, and print its clusters.

    \b
    Example:
      crm clusters run --feature aum --feature age --feature frequency --k 4 --seed 7
      crm clusters run --feature aum --feature days_since_last_activity --min-k 2 --max-k 6 --impute

    Exit status: 0 succeeded (or started, with --no-wait), 1 refused or failed (field and rule, or
    the run's reason such as TOO_FEW_CUSTOMERS), 2 bad arguments.
    """
    request = segment_service_pb2.StartClusteringRequest(
        display_name=display_name, features=list(features), cluster_count=cluster_count, min_cluster_count=min_k,
        max_cluster_count=max_k, population_segment=_segment_name(segment), random_seed=seed,
        missing_values=(analytics_pb2.CLUSTERING_MISSING_VALUES_IMPUTE_MEDIAN if impute
                        else analytics_pb2.CLUSTERING_MISSING_VALUES_DROP),
        request_id=str(uuid.uuid4()))
    run_name = ""

    async def start(stub: Any, metadata: calls.Metadata) -> Any:
        nonlocal run_name
        reply = await stub.StartClustering(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        run_name = reply.clustering_run
        return reply

    operation, result = _follow(start, wait=wait, timeout=timeout, output_format=output_format, target=target,
                                data_dir=data_dir, then=lambda stub, metadata, _: _run_and_clusters(
                                    stub, metadata, run_name))
    if result is None:
        if output_format == "json":
            output.print_json({"clustering_run": run_name, "operation": operation.name,
                               "state": state_name(operation.state)})
        else:
            output.console().print(f"{run_name}: {state_name(operation.state)} ({operation.name})", markup=False)
        return
    run, clusters = result
    _print_clusters(run, clusters, output_format)


@clusters_group.command("show")
@click.argument("run")
@output_option("table", "json")
@service_options
def show_clusters(run: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """A clustering run and, once it succeeded, its clusters largest first.

    \b
    Example:
      crm clusters show clusteringRuns/2f0c...   # or the bare run id
    """
    found, clusters = _stub_call(target, data_dir, lambda stub, metadata: _run_and_clusters(
        stub, metadata, _run_name(run)))
    _print_clusters(found, clusters, output_format)


# --- customer lifetime value -------------------------------------------------------------------

def _model_name(value: str) -> str:
    return value if value.startswith("lifetimeValueModels/") else f"lifetimeValueModels/{value}"


def _rate(value: str | None) -> decimal_pb2.Decimal | None:
    if value is None:
        return None
    try:
        Decimal(value)
    except InvalidOperation:
        output.fail(f"--discount-rate {value!r} is not a number (a fraction such as 0.08)", code=2)
    return decimal_pb2.Decimal(value=value)


def _model_table(model: analytics_pb2.LifetimeValueModel) -> Table:
    table = Table(title=f"{model.name}: {state_name(model.state)}", show_header=True, header_style="bold")
    table.add_column("Figure", style="cyan")
    table.add_column("Value", overflow="fold")
    rows = [("display name", model.display_name), ("customers", f"{model.customer_count:,}"),
            ("repeat customers", f"{model.repeat_customer_count:,}"),
            ("BG/NBD r, alpha, a, b", f"{model.bg_nbd.r:.3g}, {model.bg_nbd.alpha:.3g}, {model.bg_nbd.a:.3g}, "
                                      f"{model.bg_nbd.b:.3g}"),
            ("frequency-value correlation", f"{model.frequency_value_correlation:+.2f}")]
    if model.HasField("holdout_evaluation"):
        h = model.holdout_evaluation
        rows.append(("holdout: predicted / actual transactions",
                     f"{h.predicted_transactions:,.0f} / {h.actual_transactions:,} (MAE {h.mean_absolute_error:.2f})"))
    for figure, value in rows:
        table.add_row(figure, value)
    return table


@click.group("clv")
def clv_group() -> None:
    """Customer lifetime value: fit a BG/NBD + Gamma-Gamma model on transactions, read it, predict one
    customer's expected transactions, probability of being alive and value over a horizon."""


@clv_group.command("fit")
@click.option("--calibration-days", type=click.IntRange(min=1), default=365, show_default=True,
              help="Days of transactions to fit on (at least 180), ending where the holdout starts.")
@click.option("--holdout-days", type=click.IntRange(min=0), default=0, show_default=True,
              help="Days right before today held out to evaluate the predictions (30 to 730; 0 for none).")
@click.option("--time-unit", type=click.Choice(["week", "day"]), default="week", show_default=True)
@click.option("--segment", help="Fit only this segment's members (default everyone).")
@click.option("--penalizer", type=click.FloatRange(min=0), default=0.001, show_default=True,
              help="L2 penalty on the parameters, 0 to 1.")
@click.option("--horizon-days", type=click.IntRange(min=1), help="The model's default horizon (default 365).")
@click.option("--discount-rate", help="The model's default annual discount rate, a fraction (default 0.08).")
@click.option("--display-name", default="CLV from the command line", show_default=True)
@_wait_options
@output_option("table", "json")
@service_options
def fit(calibration_days: int, holdout_days: int, time_unit: str, segment: str | None, penalizer: float,
        horizon_days: int | None, discount_rate: str | None, display_name: str, wait: bool, timeout: float,
        output_format: str, target: str | None, data_dir: Path) -> None:
    """Fit a lifetime-value model (an operation) and print its parameters and holdout check.

    \b
    Example:
      crm clv fit --calibration-days 365 --holdout-days 90
      crm clv fit --segment wealthy-savers --time-unit day --horizon-days 730 --discount-rate 0.06

    Exit status: 0 fitted (or started, with --no-wait), 1 refused or failed (field and rule, or
    FAILED_PRECONDITION when too few repeat customers), 2 bad arguments.
    """
    # Periods are whole days: they end at today's midnight UTC.
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    calibration_end = now - timedelta(days=holdout_days)
    calibration = interval_pb2.Interval()
    calibration.start_time.FromDatetime(calibration_end - timedelta(days=calibration_days))
    calibration.end_time.FromDatetime(calibration_end)
    request = segment_service_pb2.FitLifetimeValueModelRequest(
        display_name=display_name, calibration_period=calibration, population_segment=_segment_name(segment),
        time_unit=_days(1 if time_unit == "day" else 7), penalizer_coefficient=penalizer,
        request_id=str(uuid.uuid4()))
    if holdout_days:
        request.holdout_period.start_time.FromDatetime(calibration_end)
        request.holdout_period.end_time.FromDatetime(now)
    if horizon_days is not None:
        request.horizon.CopyFrom(_days(horizon_days))
    rate = _rate(discount_rate)
    if rate is not None:
        request.annual_discount_rate.CopyFrom(rate)
    model_name = ""

    async def start(stub: Any, metadata: calls.Metadata) -> Any:
        nonlocal model_name
        reply = await stub.FitLifetimeValueModel(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        model_name = reply.lifetime_value_model
        return reply

    async def read(stub: Any, metadata: calls.Metadata, _: operation_pb2.Operation) -> Any:
        return (await stub.GetLifetimeValueModel(segment_service_pb2.GetLifetimeValueModelRequest(
            name=model_name), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).lifetime_value_model

    operation, model = _follow(start, wait=wait, timeout=timeout, output_format=output_format, target=target,
                               data_dir=data_dir, then=read)
    if model is None:
        if output_format == "json":
            output.print_json({"lifetime_value_model": model_name, "operation": operation.name,
                               "state": state_name(operation.state)})
        else:
            output.console().print(f"{model_name}: {state_name(operation.state)} ({operation.name})", markup=False)
    elif output_format == "json":
        output.print_json(output.message_to_dict(model))
    else:
        output.console().print(_model_table(model))


@clv_group.command("model")
@click.argument("model")
@output_option("table", "json")
@service_options
def show_model(model: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """A lifetime-value model with its fitted parameters.

    \b
    Example:
      crm clv model lifetimeValueModels/9b1e...   # or the bare model id
    """
    request = segment_service_pb2.GetLifetimeValueModelRequest(name=_model_name(model))
    found = _stub_call(target, data_dir, lambda stub, metadata: stub.GetLifetimeValueModel(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).lifetime_value_model
    if output_format == "json":
        output.print_json(output.message_to_dict(found))
    else:
        output.console().print(_model_table(found))


@clv_group.command("show")
@click.argument("customer_id")
@click.option("--model", help="The model (default the latest fitted one).")
@click.option("--horizon-days", type=click.IntRange(min=1), help="How far ahead (default the model's horizon).")
@click.option("--discount-rate", help="Annual discount rate, a fraction (default the model's).")
@output_option("table", "json")
@service_options
def show_value(customer_id: str, model: str | None, horizon_days: int | None, discount_rate: str | None,
               output_format: str, target: str | None, data_dir: Path) -> None:
    """One customer's expected transactions, probability of being alive and expected value over the
    horizon. The read is audited (purpose marketing).

    \b
    Example:
      crm clv show DEMO0001 --horizon-days 730

    Exit status: 0 ok, 1 refused (FAILED_PRECONDITION when no model has been fitted), 2 bad arguments.
    """
    request = segment_service_pb2.GetCustomerLifetimeValueRequest(
        customer=customer_name(customer_id), model=_model_name(model) if model else "", audit=AUDIT)
    if horizon_days is not None:
        request.horizon.CopyFrom(_days(horizon_days))
    rate = _rate(discount_rate)
    if rate is not None:
        request.annual_discount_rate.CopyFrom(rate)
    value = _stub_call(target, data_dir, lambda stub, metadata: stub.GetCustomerLifetimeValue(
        request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).lifetime_value
    if output_format == "json":
        output.print_json(output.message_to_dict(value))
        return
    table = Table(title=f"{value.customer} over {value.horizon.ToTimedelta().days} days ({value.model})",
                  show_header=True, header_style="bold")
    table.add_column("Figure", style="cyan")
    table.add_column("Value")
    for figure, text in (("expected value", _money(value.expected_value)),
                         ("expected transactions", f"{value.expected_transactions:.2f}"),
                         ("probability alive", f"{value.probability_alive:.1%}"),
                         ("expected transaction value", _money(value.expected_transaction_value)),
                         ("repeat transactions / recency / age", f"{value.frequency} / {value.recency:.1f} / "
                                                                 f"{value.age:.1f}")):
        table.add_row(figure, text)
    output.console().print(table)
