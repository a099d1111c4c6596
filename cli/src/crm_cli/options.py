"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from crm_cli import workspace

F = Callable[..., Any]


def data_dir_option(function: F) -> F:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CRM_DATA_DIR",
        default=lambda: workspace.default_data_dir(), show_default=".crm in the repository root",
        help="Local data folder: secrets.env, pgdata/, logs/.",
    )(function)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(function)


def output_option(*formats: str) -> Callable[[F], F]:
    """`--output` among `formats`, the first being the default (a table for people)."""
    scripted = " or ".join(f.upper() for f in formats[1:])

    def decorate(function: F) -> F:
        return click.option("--output", "output_format", type=click.Choice(formats), default=formats[0],
                            show_default=True, help=f"A table for people, or {scripted} on stdout for scripts."
                            )(function)
    return decorate


def target_option(function: F) -> F:
    """`--target HOST:PORT`; without it, the address `crm run` gives the service (calls.service_target)."""
    return click.option("--target", metavar="HOST:PORT",
                        help="Service address; default 127.0.0.1:$CRM_<SERVICE>_PORT or the service's "
                             "default port, as `crm run` starts it.")(function)


def service_options(function: F) -> F:
    """`--target` and `--data-dir`: what every command calling one service takes."""
    return data_dir_option(target_option(function))
