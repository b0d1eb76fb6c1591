"""CLI commands for detectors (`liveguard analyze`, `liveguard detectors ...`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the detector commands to the root CLI."""
