"""Turn pydantic validation errors into one plain line per problem.

Policy authors and DPOs read these in CI logs, so every line names the file, the exact
place in the YAML (``elements[2].retention_days``) and what was expected, in words rather
than pydantic's internal vocabulary. The engine reuses this for policy files too, so nothing
here knows about governance documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

__all__ = ["describe_error", "format_loc", "format_validation_error", "validation_messages"]

_QUOTED = re.compile(r"'([^']*)'")
# pydantic inserts validator/union tags such as "function-after[...]" or "union[...]" into
# locations; they mean nothing to someone editing YAML, so they are dropped.
_INTERNAL_LOC = re.compile(r"^[a-z\-]+\[.*\]$")


def format_loc(loc: Iterable[int | str]) -> str:
    """``("elements", 2, "retention_days")`` → ``elements[2].retention_days``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _INTERNAL_LOC.match(part):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _choices(ctx: Mapping[str, Any]) -> str:
    return ", ".join(_QUOTED.findall(str(ctx.get("expected", ""))))


def _bound(ctx: Mapping[str, Any], key: str) -> Any:
    return ctx.get(key)


# error type → plain-words renderer (ctx, input). Anything not listed falls back to
# pydantic's own message, lower-cased, which is already readable for the rare cases.
_RENDER: dict[str, Any] = {
    "missing": lambda c, i: "field required",
    "extra_forbidden": lambda c, i: "extra field not allowed",
    "enum": lambda c, i: f"expected one of: {_choices(c)} (got {_short(i)})",
    "literal_error": lambda c, i: f"expected one of: {_choices(c)} (got {_short(i)})",
    "int_parsing": lambda c, i: f"expected a whole number (got {_short(i)})",
    "int_type": lambda c, i: f"expected a whole number (got {_short(i)})",
    "int_from_float": lambda c, i: f"expected a whole number (got {_short(i)})",
    "float_parsing": lambda c, i: f"expected a number (got {_short(i)})",
    "float_type": lambda c, i: f"expected a number (got {_short(i)})",
    "finite_number": lambda c, i: "expected a finite number",
    "bool_parsing": lambda c, i: f"expected true or false (got {_short(i)})",
    "bool_type": lambda c, i: f"expected true or false (got {_short(i)})",
    "string_type": lambda c, i: f"expected text (got {_short(i)})",
    "string_too_short": lambda c, i: "expected non-empty text",
    "string_too_long": lambda c, i: f"expected at most {_bound(c, 'max_length')} characters",
    "string_pattern_mismatch": lambda c, i: f"expected text matching {_bound(c, 'pattern')}",
    "greater_than_equal": lambda c, i: f"expected a number >= {_bound(c, 'ge')} (got {i!r})",
    "greater_than": lambda c, i: f"expected a number > {_bound(c, 'gt')} (got {i!r})",
    "less_than_equal": lambda c, i: f"expected a number <= {_bound(c, 'le')} (got {i!r})",
    "less_than": lambda c, i: f"expected a number < {_bound(c, 'lt')} (got {i!r})",
    "too_short": lambda c, i: f"expected at least {_bound(c, 'min_length')} item(s)",
    "too_long": lambda c, i: f"expected at most {_bound(c, 'max_length')} item(s)",
    "list_type": lambda c, i: f"expected a list (got {_short(i)})",
    "tuple_type": lambda c, i: f"expected a list (got {_short(i)})",
    "set_type": lambda c, i: f"expected a list (got {_short(i)})",
    "frozen_set_type": lambda c, i: f"expected a list (got {_short(i)})",
    "dict_type": lambda c, i: f"expected a mapping (got {_short(i)})",
    "model_type": lambda c, i: f"expected a mapping (got {_short(i)})",
    "model_attributes_type": lambda c, i: f"expected a mapping (got {_short(i)})",
    "date_type": lambda c, i: f"expected a date YYYY-MM-DD (got {_short(i)})",
    "date_parsing": lambda c, i: f"expected a date YYYY-MM-DD (got {_short(i)})",
    "date_from_datetime_parsing": lambda c, i: f"expected a date YYYY-MM-DD (got {_short(i)})",
    "datetime_type": lambda c, i: f"expected a date-time (got {_short(i)})",
    "datetime_parsing": lambda c, i: f"expected a date-time (got {_short(i)})",
    "datetime_from_date_parsing": lambda c, i: f"expected a date-time (got {_short(i)})",
    "url_parsing": lambda c, i: f"expected a URL (got {_short(i)})",
}


def describe_error(error: Mapping[str, Any]) -> str:
    """One pydantic error dict → what was expected, in plain words."""
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        # Our own validators raise ValueError with a message already written for humans.
        return str(ctx["error"])
    render = _RENDER.get(kind)
    if render is not None:
        return render(ctx, error.get("input"))
    msg = str(error.get("msg", kind))
    return msg[:1].lower() + msg[1:]


def _is_length_echo(err: Mapping[str, Any], errors: list[Any]) -> bool:
    # pydantic checks a list's length after dropping invalid items, so one bad item in a
    # one-item list also yields "expected at least 1 item(s)": noise that blames the wrong
    # thing. Drop the length error when an item below it has its own error.
    if err["type"] not in ("too_short", "too_long"):
        return False
    loc = tuple(err["loc"])
    n = len(loc)
    return any(len(o["loc"]) > n and tuple(o["loc"][:n]) == loc for o in errors)


def validation_messages(exc: ValidationError) -> list[tuple[str, str]]:
    """``(dotted.loc, message)`` per error, in pydantic's (document) order."""
    errors = exc.errors()
    return [
        (format_loc(err["loc"]), describe_error(err))
        for err in errors
        if not _is_length_echo(err, errors)
    ]


def format_validation_error(file: str, exc: ValidationError) -> list[str]:
    """One ``"<file>: <dotted.loc.path>: <what was expected>"`` line per error, all of them."""
    return [f"{file}: {loc}: {message}" for loc, message in validation_messages(exc)]
