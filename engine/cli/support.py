"""Shared CLI plumbing: error → one clear line and an exit code, options, request parsing."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from engine.core.errors import LiveguardError, RequestInvalid
from engine.core.models import DecisionRequest
from governance.errors import format_validation_error

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_POLICIES = Path("policies")

PoliciesOption = Annotated[
    Path,
    typer.Option(
        "--policies",
        envvar="LIVEGUARD_POLICIES",
        help="Policy repository (one folder per policy).",
        show_default=True,
    ),
]


def fail(lines: list[str] | str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    for line in [lines] if isinstance(lines, str) else lines:
        typer.echo(f"error: {line}" if not line.startswith("  ") else line, err=True)
    return typer.Exit(code)


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Our errors become one clear line (plus listed problems) and an exit code, never a trace."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LiveguardError as exc:
            raise fail(exc.lines(), exc.exit_code) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(str(exc)) from None

    return wrapper


def read_json(source: str) -> Any:
    """Read JSON from a path or '-' (stdin)."""
    name = "stdin" if source == "-" else source
    if source == "-" and sys.stdin.isatty():
        raise RequestInvalid("no request: pass --input FILE or pipe a JSON request on stdin")
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RequestInvalid(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestInvalid(f"{name}: cannot be read ({exc})") from None
    if not text.strip():
        raise RequestInvalid(f"{name}: empty input; expected a JSON decision request")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestInvalid(
            f"{name}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})"
        ) from None


def parse_request(data: Any, source: str) -> DecisionRequest:
    name = "stdin" if source == "-" else source
    if not isinstance(data, dict):
        raise RequestInvalid(f"{name}: expected a JSON object (a decision request)")
    try:
        return DecisionRequest.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(name, exc)
        raise RequestInvalid(lines[0], problems=lines[1:]) from None
