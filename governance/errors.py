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
# pydantic puts union-branch and validator tags into locations: "float", "dict[str,float]",
# "function-after[...]", or a model class name. They mean nothing to someone editing YAML.
_BRACKET_TAG = re.compile(r"^[a-z\-]+\[.*\]$")
_SCALAR_TAGS = frozenset(
    {"float", "int", "str", "bool", "none", "date", "datetime", "time", "decimal", "bytes"}
)
_TYPE_MISMATCH = re.compile(r"_(type|parsing)$|^(enum|literal_error|model_attributes_type)$")


def _is_tag(part: int | str) -> bool:
    if isinstance(part, int):
        return False
    return bool(_BRACKET_TAG.match(part)) or part in _SCALAR_TAGS or part[:1].isupper()


def format_loc(loc: Iterable[int | str]) -> str:
    """``("elements", 2, "retention_days")`` → ``elements[2].retention_days``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_tag(part) or part == "[key]":
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


def _message(err: Mapping[str, Any]) -> str:
    text = describe_error(err)
    # A bad mapping key is reported at the key itself; say so.
    return f"invalid key: {text}" if err["loc"] and err["loc"][-1] == "[key]" else text


def _collapse_unions(errors: list[Any]) -> list[tuple[tuple[Any, ...], str]]:
    """One report per union instead of one error per branch.

    When every branch failed only because the value has the wrong type, say what the
    alternatives are ("expected a number or a mapping"); when some branch got further
    (the value had the right shape but a wrong detail), report that branch's errors only.
    """
    out: list[tuple[tuple[Any, ...], str]] = []
    unions: dict[tuple[Any, ...], dict[Any, list[Any]]] = {}
    order: list[tuple[Any, ...] | int] = []
    for i, err in enumerate(errors):
        loc = tuple(err["loc"])
        t = next((k for k, part in enumerate(loc) if _is_tag(part)), None)
        if t is None:
            order.append(i)
            continue
        key = loc[:t]
        if key not in unions:
            unions[key] = {}
            order.append(key)
        unions[key].setdefault(loc[t], []).append(err)
    for item in order:
        if isinstance(item, int):
            err = errors[item]
            out.append((tuple(err["loc"]), _message(err)))
            continue
        branches = unions[item]
        depth = len(item) + 1
        shallow = {
            tag
            for tag, errs in branches.items()
            if all(len(e["loc"]) == depth and _TYPE_MISMATCH.search(e["type"]) for e in errs)
        }
        if len(branches) > 1 and shallow == set(branches):
            wanted = []
            for errs in branches.values():
                text = describe_error(errs[0]).split(" (got ")[0].removeprefix("expected ")
                if text not in wanted:
                    wanted.append(text)
            got = _short(branches[next(iter(branches))][0].get("input"))
            out.append((item, f"expected {' or '.join(wanted)} (got {got})"))
            continue
        for tag, errs in branches.items():
            if tag in shallow and len(branches) > 1:
                continue
            out.extend((tuple(e["loc"]), _message(e)) for e in errs)
    return out


def validation_messages(exc: ValidationError) -> list[tuple[str, str]]:
    """``(dotted.loc, message)`` per problem, in pydantic's (document) order."""
    errors = [e for e in exc.errors() if not _is_length_echo(e, exc.errors())]
    return [(format_loc(loc), msg) for loc, msg in _collapse_unions(errors)]


def format_validation_error(file: str, exc: ValidationError) -> list[str]:
    """One ``"<file>: <dotted.loc.path>: <what was expected>"`` line per error, all of them."""
    return [f"{file}: {loc}: {message}" for loc, message in validation_messages(exc)]
