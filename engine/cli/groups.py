"""The CLI's command groups, shared so feature modules can add commands to them."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="liveguard",
    help="Policy-as-code trust decisions for live calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Author, test and inspect policies.", no_args_is_help=True)
governance_app = typer.Typer(
    help="Privacy assessments and data-flow manifests.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")
app.add_typer(governance_app, name="governance")
