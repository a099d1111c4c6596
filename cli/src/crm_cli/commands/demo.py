"""`crm demo load`: a synthetic bank loaded into a running platform through profile's own RPCs."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from crm_cli import bank_bulk, bank_loader, calls, output, synthetic_bank
from crm_cli.options import data_dir_option, output_option, target_option

MAX_CUSTOMERS = 1_000_000


@click.group("demo")
def demo_group() -> None:
    """Synthetic data to see the platform work (never real people; never dispatch to it)."""


@demo_group.command("load")
@click.option("--customers", "count", type=click.IntRange(min=1, max=MAX_CUSTOMERS), default=1000, show_default=True,
              help="How many customers the bank has.")
@click.option("--seed", type=int, default=synthetic_bank.SEED, show_default=True,
              help="The same seed and size give the same bank (laid out relative to today).")
@click.option("--feedback/--no-feedback", "--complaints/--no-complaints", "with_feedback", default=False,
              show_default=True,
              help="Also file the customers' complaints and survey answers through feedback (at "
                   "--feedback-target, else where `crm run` puts it); waits for feedback to learn of the "
                   "customers from profile's feed. `--complaints` is the older name.")
@click.option("--feedback-target", metavar="HOST:PORT", help="Feedback's address, for --feedback.")
@click.option("--method", type=click.Choice(["auto", "bulk", "per-call"]), default="auto", show_default=True,
              help=f"bulk: customers as CSV files through profile's ImportCustomers, holdings and consents "
                   f"per call ({bank_bulk.CONCURRENCY} in flight), events through IngestEvents; per-call: "
                   f"each customer through CreateCustomer; auto: bulk above {bank_bulk.THRESHOLD:,} customers.")
@click.option("--files", "files_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the bulk path writes its CSV files (kept); default a temporary folder, removed after.")
@output_option("table", "json")
@target_option
@data_dir_option
def load(count: int, seed: int, with_feedback: bool, feedback_target: str | None, method: str,
         files_dir: Path | None, output_format: str, target: str | None, data_dir: Path) -> None:
    """Load a synthetic bank into profile: customers, holdings, transactions, logins, payroll,
    marketing consents, a churn pattern, and a few customers registered twice (branch and mobile
    app, under other ids) for identity resolution (docs: crm_cli/synthetic_bank.py).

    \b
    Example:
      crm demo load --customers 5000
      crm demo load --customers 200 --seed 7 --output json
      crm demo load --customers 2000 --feedback     # complaints and survey answers too
      crm demo load --customers 100000              # the bulk path, with a bar per phase

    Both methods load the same bank for the same seed and size (the same customers, holdings,
    consents and events). The bulk path writes the customers and their mobile-app duplicates as
    CSV files and imports them (UploadImportFile + ImportCustomers, a mapping generated beside
    them), sets their core-banking and app ids with UpdateCustomer (the import has no target for
    them), then runs CreateHolding and RecordConsent per call beside IngestEvents streams; its
    report adds each phase's count and seconds.

    Loading the same bank again changes nothing (every write is idempotent). Profile derives the
    features in the background; segment, campaign and risk receive it all through profile's change
    feed. Needs an admin token (CRM_TOKEN; by default one is minted with the local secret).

    Exit status: 0 when everything loaded, 1 when a call failed or anything was refused, 2 for bad
    arguments.
    """
    metadata = calls.caller_metadata(data_dir)
    token = metadata[0][1].removeprefix("Bearer ")
    address = target or calls.service_target("profile")
    feedback_address = (feedback_target or calls.service_target("feedback")) if with_feedback else ""
    bulk = method == "bulk" or (method == "auto" and count > bank_bulk.THRESHOLD)
    console = output.console(stderr=True)

    async def run() -> bank_loader.BankLoadResult:
        async with grpc.aio.insecure_channel(address) as channel:
            if bulk:
                with _Bars(console) as bars, _folder(files_dir) as folder:
                    loaded = await bank_bulk.load(channel, token, count, seed=seed, folder=folder, phases=bars)
            else:
                progress = Progress(TextColumn("customers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                    console=console, transient=True)
                task = progress.add_task("load", total=count)
                with progress:
                    loaded = await bank_loader.load(channel, token, synthetic_bank.generate(count, seed=seed),
                                                    on_customers=lambda n: progress.advance(task, n))
        if with_feedback:
            async with grpc.aio.insecure_channel(feedback_address) as channel:
                await bank_loader.file_complaints(channel, token, loaded)
                await bank_loader.file_surveys(channel, token, loaded, synthetic_bank.surveys())
        return loaded

    result = calls.run(run())
    _report(result, output_format)
    if result.failed or result.customers.failed or result.duplicates.failed:
        raise SystemExit(1)


def _report(result: bank_loader.BankLoadResult, output_format: str) -> None:
    failed = [*result.customers.failed, *result.duplicates.failed, *result.failed]
    summary = {"customers_created": result.customers.created, "customers_existing": result.customers.existing,
               "duplicates_created": result.duplicates.created, "duplicates_existing": result.duplicates.existing,
               "holdings_loaded": result.holdings, "consents_loaded": result.consents,
               "events_accepted": result.events_accepted, "events_duplicate": result.events_duplicate,
               "events_rejected": result.events_rejected, "complaints_filed": result.complaints_filed,
               "complaints_existing": result.complaints_existing, "surveys": result.surveys,
               "survey_answers_filed": result.survey_answers_filed,
               "survey_answers_existing": result.survey_answers_existing,
               "phases": {name: {"count": items, "seconds": round(seconds, 1)}
                          for name, (items, seconds) in result.phases.items()},
               "failures": [{"what": what, "code": code, "message": message} for what, code, message in failed]}
    if output_format == "json":
        output.print_json(summary)
        return
    table = Table(title="synthetic bank loaded", show_header=False)
    for key, value in summary.items():
        if key not in ("failures", "phases"):
            table.add_row(key.replace("_", " "), f"{value:,}")
    for name, (items, seconds) in result.phases.items():
        rate = f", {items / seconds:,.0f}/s" if seconds > 0 else ""
        table.add_row(f"phase {name}", f"{items:,} in {seconds:,.1f} s{rate}")
    output.console().print(table)
    for what, code, message in failed[:20]:
        output.console(stderr=True).print(f"[yellow]! {what}: {code} {message}[/]")


class _Bars:
    """One progress bar per phase of the bulk path, on stderr (bank_bulk.Phases)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, disable=not console.is_terminal)

    def __enter__(self) -> _Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, name: str, total: int | None) -> TaskID:
        return self._progress.add_task(name, total=total)

    def advance(self, phase: object, amount: int) -> None:
        self._progress.advance(phase, amount)  # type: ignore[arg-type]

    def update(self, phase: object, *, done: int, total: int | None) -> None:
        self._progress.update(phase, completed=done, total=total)  # type: ignore[arg-type]


@contextmanager
def _folder(kept: Path | None) -> Iterator[Path]:
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix="crm-demo-bank-") as folder:
        yield Path(folder)
