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
