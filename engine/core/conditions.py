"""Structured policy conditions, compiled once to plain closures (serving) or numpy masks.

A condition is data, not a string language::

    when:
      transaction.value: {gte: 10000}
      identity.assurance: {lte: low}          # ordinal fields compare by rank
      device.posture: [unknown, compromised]  # a list means "one of"
      session.participant: external           # a scalar means "equals"
      any: [{device.new_device: true}, {device.geo_mismatch: true}]
      not: {session.kind: executive_meeting}

All keys of a mapping must hold. A field that is absent (undeclared in the data-flow
manifest, or not in the request) satisfies no comparison, so it can never trigger a rule.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from engine.core.models import ASSURANCE_LEVELS, POSTURE_LEVELS

Context = Mapping[str, Any]
Predicate = Callable[[Context], bool]

#: Fields of the normalized request a condition may name, with their value type.
REQUEST_FIELDS: dict[str, type | tuple[str, ...]] = {
    "session.channel": ("conference", "support_call"),
    "session.kind": str,
    "session.participant": ("internal", "external"),
    "session.consent.media_analysis": bool,
    "session.consent.raw_media_escalation": bool,
    "identity.assurance": ASSURANCE_LEVELS,
    "identity.method": str,
    "identity.seconds_since_auth": float,
    "identity.failed_attempts": float,
    "transaction.kind": str,
    "transaction.value": float,
    "transaction.currency": str,
    "device.posture": POSTURE_LEVELS,
    "device.new_device": bool,
    "device.geo_mismatch": bool,
}
#: Engine outputs a condition may read; not personal data, always available.
FUSED_FIELDS: dict[str, type] = {
    "fused.risk": float,
    "fused.evidence_mass": float,
    "fused.signal_count": float,
}
#: Ordinal fields: ``gte``/``lte`` compare by position in this order.
ORDINALS: dict[str, tuple[str, ...]] = {
    "identity.assurance": ASSURANCE_LEVELS,
    "device.posture": POSTURE_LEVELS,
}
SIGNAL_FIELD = re.compile(
    r"^signals\.(?P<name>[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.(?P<attr>score|confidence|present)$"
)

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_SET_OPS = ("in", "not_in")
_COMBINATORS = ("all", "any", "not")


class ConditionError(ValueError):
    """A malformed condition; ``problems`` holds ``path: what was expected`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def field_kind(path: str) -> type | tuple[str, ...] | None:
    """The value type of a condition field, or None when the path is not a known field."""
    if path in REQUEST_FIELDS:
        return REQUEST_FIELDS[path]
    if path in FUSED_FIELDS:
        return FUSED_FIELDS[path]
    m = SIGNAL_FIELD.match(path)
    if m:
        return bool if m["attr"] == "present" else float
    return None


def data_field(path: str) -> str | None:
    """The data-flow field a condition path reads (``signals.x.y.score`` → ``signals.x.y``)."""
    if path.startswith("fused."):
        return None
    m = SIGNAL_FIELD.match(path)
    if m:
        return f"signals.{m['name']}"
    return path


def fields_in(spec: Any) -> set[str]:
    """Every field path a (well-formed) condition names."""
    out: set[str] = set()
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if key in ("all", "any"):
                for sub in value or ():
                    out |= fields_in(sub)
            elif key == "not":
                out |= fields_in(value)
            else:
                out.add(str(key))
    return out


def _rank(path: str, value: Any) -> Any:
    levels = ORDINALS.get(path)
    if levels is None:
        return value
    # _check_value has already reported a value outside the scale.
    return levels.index(value) if value in levels else -1


def _check_value(path: str, value: Any, where: str, problems: list[str]) -> None:
    kind = field_kind(path)
    if isinstance(kind, tuple):
        if value not in kind:
            problems.append(f"{where}: expected one of {', '.join(kind)}, got {value!r}")
    elif kind is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where}: expected a number, got {value!r}")
    elif kind is str and not isinstance(value, str):
        problems.append(f"{where}: expected a string, got {value!r}")


def _leaf(path: str, spec: Any, where: str, problems: list[str]) -> list[tuple[str, Any]]:
    """Normalize one field's predicate to a list of (op, operand) pairs."""
    if isinstance(spec, list):
        spec = {"in": spec}
    elif not isinstance(spec, Mapping):
        spec = {"eq": spec}
    if not spec:
        problems.append(f"{where}: expected at least one comparison")
    ops: list[tuple[str, Any]] = []
    for op, operand in spec.items():
        at = f"{where}.{op}"
        if op in _COMPARE:
            if op not in ("eq", "ne") and field_kind(path) in (bool, str):
                problems.append(f"{at}: '{op}' needs a number or an ordinal field")
                continue
            _check_value(path, operand, at, problems)
            ops.append((op, _rank(path, operand)))
        elif op in _SET_OPS:
            if not isinstance(operand, list) or not operand:
                problems.append(f"{at}: expected a non-empty list")
                continue
            for i, item in enumerate(operand):
                _check_value(path, item, f"{at}[{i}]", problems)
            ops.append((op, frozenset(_rank(path, v) for v in operand)))
        else:
            allowed = ", ".join([*_COMPARE, *_SET_OPS])
            problems.append(f"{at}: unknown comparison; expected one of {allowed}")
    return ops


def _leaf_predicate(path: str, ops: list[tuple[str, Any]]) -> Predicate:
    levels = ORDINALS.get(path)
    index = {v: i for i, v in enumerate(levels)} if levels else None
    if index is None and len(ops) == 1:
        # The common case, one comparison on a plain field: a closure without loops.
        op, operand = ops[0]
        get = operator.methodcaller("get", path)
        if op == "in":
            return lambda ctx: (v := get(ctx)) is not None and v in operand
        if op == "not_in":
            return lambda ctx: (v := get(ctx)) is not None and v not in operand
        compare = _COMPARE[op]
        return lambda ctx: (v := get(ctx)) is not None and compare(v, operand)

    def predicate(ctx: Context) -> bool:
        value = ctx.get(path)
        if value is None:
            return False
        if index is not None:
            value = index.get(value, -1)
        for op, operand in ops:
            if op == "in":
                if value not in operand:
                    return False
            elif op == "not_in":
                if value in operand:
                    return False
            elif not _COMPARE[op](value, operand):
                return False
        return True

    return predicate


def compile_condition(spec: Any, where: str = "when") -> Predicate:
    """Compile a condition to a closure; raises ConditionError listing every problem."""
    problems: list[str] = []
    predicate = _compile(spec, where, problems)
    if problems:
        raise ConditionError(problems)
    return predicate


def _compile(spec: Any, where: str, problems: list[str]) -> Predicate:
    if not isinstance(spec, Mapping) or not spec:
        problems.append(f"{where}: expected a non-empty mapping of field: comparison")
        return lambda ctx: False
    parts: list[Predicate] = []
    for key, value in spec.items():
        at = f"{where}.{key}"
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                problems.append(f"{at}: expected a non-empty list of conditions")
                continue
            subs = [_compile(v, f"{at}[{i}]", problems) for i, v in enumerate(value)]
            parts.append(_all(subs) if key == "all" else _any(subs))
        elif key == "not":
            sub = _compile(value, at, problems)
            parts.append(lambda ctx, sub=sub: not sub(ctx))
        elif field_kind(str(key)) is None:
            problems.append(
                f"{at}: unknown field; expected a request field (e.g. transaction.value), "
                "signals.<name>.score|confidence|present, or fused.risk|evidence_mass|signal_count"
            )
        else:
            parts.append(_leaf_predicate(str(key), _leaf(str(key), value, at, problems)))
    return _all(parts)


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda ctx: a(ctx) and b(ctx)
    if len(parts) == 3:
        a, b, c = parts
        return lambda ctx: a(ctx) and b(ctx) and c(ctx)

    def every(ctx: Context) -> bool:
        # A plain loop: all() over a generator costs a frame per call on this hot path.
        for p in parts:  # noqa: SIM110
            if not p(ctx):
                return False
        return True

    return every


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda ctx: a(ctx) or b(ctx)

    def some(ctx: Context) -> bool:
        for p in parts:  # noqa: SIM110
            if p(ctx):
                return True
        return False

    return some


# --- vectorized form, for simulations over many sessions at once -----------------------

Columns = Mapping[str, np.ndarray]
Mask = Callable[[Columns], np.ndarray]


def compile_mask(spec: Any) -> Mask:
    """Compile a (valid) condition to a function of column arrays returning a bool mask.

    Categorical columns are given as their string values, ordinal ones as labels or as ranks;
    absent values as None (object arrays), NaN (float arrays) or -1 (integer ranks) and, as in
    the closure form, match nothing.
    """
    compile_condition(spec)  # validate with the same messages as the serving path
    return _mask(spec)


def _mask(spec: Mapping[str, Any]) -> Mask:
    parts: list[Mask] = []
    for key, value in spec.items():
        if key in ("all", "any"):
            subs = [_mask(v) for v in value]
            combine = np.logical_and.reduce if key == "all" else np.logical_or.reduce
            parts.append(lambda cols, subs=subs, combine=combine: combine([s(cols) for s in subs]))
        elif key == "not":
            sub = _mask(value)
            parts.append(lambda cols, sub=sub: ~sub(cols))
        else:
            parts.append(_leaf_mask(str(key), _leaf(str(key), value, key, [])))
    return lambda cols: np.logical_and.reduce([p(cols) for p in parts])


def _leaf_mask(path: str, ops: list[tuple[str, Any]]) -> Mask:
    levels = ORDINALS.get(path)

    def mask(cols: Columns) -> np.ndarray:
        col = np.asarray(cols[path])
        if levels is not None and col.dtype.kind not in "iuf":
            # Ordinals may come as labels or, faster, already as ranks (NaN = absent).
            lookup = {v: i for i, v in enumerate(levels)}
            col = np.array([lookup.get(v, np.nan) for v in col], dtype=float)
        elif levels is not None and col.dtype.kind in "iu":
            col = np.where(col < 0, np.nan, col.astype(float))
        present = ~_absent(col)
        out = present.copy()
        for op, operand in ops:
            if op == "in":
                out &= np.isin(col, list(operand))
            elif op == "not_in":
                out &= ~np.isin(col, list(operand))
            else:
                with np.errstate(invalid="ignore"):
                    out &= _COMPARE[op](col, operand)
        return out & present

    return mask


def _absent(col: np.ndarray) -> np.ndarray:
    if col.dtype.kind == "f":
        return np.isnan(col)
    if col.dtype.kind == "O":
        return np.array([v is None for v in col], dtype=bool)
    return np.zeros(col.shape, dtype=bool)
