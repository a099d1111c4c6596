"""The `crm` entry point: one click group, one sub-command per module in `commands/`."""

from __future__ import annotations

import click

from crm_cli.commands.alerts import alerts_group
from crm_cli.commands.analytics import clusters_group, clv_group, tiers_group
from crm_cli.commands.campaigns import campaigns_group, offers_group
from crm_cli.commands.complaints import complaints_group
from crm_cli.commands.customers import customers
from crm_cli.commands.demo import demo_group
from crm_cli.commands.health import health
from crm_cli.commands.imports import import_group
from crm_cli.commands.models import models_group
from crm_cli.commands.operations import operations_group
from crm_cli.commands.run import run
from crm_cli.commands.segments import segments_group
from crm_cli.commands.token import token
from crm_cli.commands.triggers import triggers_group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="crm-cli", prog_name="crm")
def cli() -> None:
    """The CRM platform's command line: run it locally, check it, call its services."""


cli.add_command(run)
cli.add_command(token)
cli.add_command(health)
cli.add_command(customers)
cli.add_command(import_group)
cli.add_command(operations_group)
cli.add_command(demo_group)
cli.add_command(segments_group)
cli.add_command(tiers_group)
cli.add_command(clusters_group)
cli.add_command(clv_group)
cli.add_command(complaints_group)
cli.add_command(campaigns_group)
cli.add_command(offers_group)
cli.add_command(triggers_group)
cli.add_command(models_group)
cli.add_command(alerts_group)


def main() -> None:
    cli()
