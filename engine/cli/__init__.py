"""The ``liveguard`` command line: one module per command group."""

from engine.cli.main import app, main

__all__ = ["app", "main"]
