"""`crm run`: start the platform locally (what `make run` calls)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from crm_cli import output
from crm_cli.launcher import RunOptions, run_platform
from crm_cli.options import data_dir_option
from crm_cli.platform import COMPONENTS


@click.command()
@data_dir_option
@click.option("--only", metavar="NAMES",
              help=f"Comma-separated subset to start, of: {', '.join(c.name for c in COMPONENTS)}.")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds for everything to become healthy.")
@click.option("--logs", type=click.Choice(["stream", "file"]), default="stream", show_default=True,
              help="Stream the processes' log lines here (prefixed), or only write them to files.")
@click.option("--log-format", type=click.Choice(["auto", "text", "json"]), default="auto", show_default=True,
              help="Streamed lines as short readable text or as the JSON the processes write; auto: text "
                   "when stdout is a terminal. The files under DATA_DIR/logs/ are always JSON.")
@click.option("--demo-data/--no-demo-data", default=True, show_default=True,
              help="Load the synthetic demo bank into profile (as `crm demo load` does).")
@click.option("--demo-customers", type=click.IntRange(min=1, max=100_000), default=300, show_default=True,
              help="Customers of the demo bank.")
@click.option("--grace", type=click.FloatRange(min=0), default=15.0, show_default=True,
              help="Seconds the processes get to stop after SIGTERM before they are killed.")
def run(data_dir: Path, only: str | None, timeout: float, logs: str, log_format: str, demo_data: bool,
        demo_customers: int, grace: float) -> None:
    """Run PostgreSQL, every service and the gateway on this machine; Ctrl-C stops them all.

    Each service gets its own database and login role on one embedded PostgreSQL in
    DATA_DIR/pgdata, unless CRM_<SERVICE>_DATABASE_URL is set (then that database is used).
    Ports: profile 50051, segment 50052, campaign 50053, feedback 50054, risk 50055,
    gateway 8080; override with CRM_<SERVICE>_PORT and CRM_GATEWAY_PORT.
    """
    options = RunOptions(data_dir=data_dir, only=only, timeout=timeout, stream_logs=logs == "stream",
                         readable_logs=log_format == "text" or (log_format == "auto" and sys.stdout.isatty()),
                         demo_data=demo_data, demo_customers=demo_customers, grace=grace)
    sys.exit(asyncio.run(run_platform(options, output.console(), os.environ)))
