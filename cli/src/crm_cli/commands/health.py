"""`crm health`: is every service and the gateway up?"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

import click
from rich.table import Table
from rich.text import Text

from crm_cli import output
from crm_cli.options import json_option
from crm_cli.platform import COMPONENTS, LOCAL_HOST, PlatformError, resolve_port, select
from crm_cli.probes import ProbeResult, probe

STYLE = {"SERVING": "green", "NOT_SERVING": "yellow", "SERVICE_UNKNOWN": "yellow"}


async def _probe_all(only: str | None, host: str, timeout: float) -> list[ProbeResult]:
    targets = select(only)
    return list(await asyncio.gather(*(
        probe(t, resolve_port(t, os.environ), timeout=timeout, host=host) for t in targets)))


@click.command()
@click.option("--only", metavar="NAMES",
              help=f"Comma-separated subset, of: {', '.join(c.name for c in COMPONENTS)}.")
@click.option("--host", default=LOCAL_HOST, show_default=True, help="Where the platform runs.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds per check.")
@json_option
def health(only: str | None, host: str, timeout: float, as_json: bool) -> None:
    """Health of each component: gRPC grpc.health.v1 Check, gateway GET /healthz.

    Ports come from CRM_<SERVICE>_PORT / CRM_GATEWAY_PORT or the defaults. Exits 1 unless every
    component checked is SERVING.
    """
    try:
        results = asyncio.run(_probe_all(only, host, timeout))
    except PlatformError as exc:
        output.fail(str(exc), code=2)
    if as_json:
        output.print_json([dataclasses.asdict(r) | {"latency_ms": round(r.latency_ms, 1)} for r in results])
    else:
        table = Table(show_header=True, header_style="bold")
        for column in ("Component", "Address", "Status", "Latency", "Detail"):
            table.add_column(column, justify="right" if column == "Latency" else "left")
        for r in results:
            style = STYLE.get(r.health.value, "red")
            table.add_row(r.component, r.address, Text(r.health.value, style=style), f"{r.latency_ms:.0f} ms",
                          Text(r.detail))
        output.console().print(table)
    sys.exit(0 if all(r.serving for r in results) else 1)
