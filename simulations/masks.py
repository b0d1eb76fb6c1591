"""Policy conditions over coded columns: each categorical leaf evaluated once per distinct value.

A corpus stores categorical fields (strings, ordinal labels, booleans with gaps) as Parquet
dictionaries: a handful of distinct values and one small integer code per session. Comparing
millions of strings (or Python objects, when some sessions lack the field) costs far more than
the decision itself, so a leaf on such a column runs the engine's own ``compile_mask`` on the
column's distinct values (plus the absent value) and gathers its answer by code. Numeric
columns go to ``compile_mask`` whole. The combinators (all / any / not) are the engine's: a
leaf that cannot see its field matches nothing, and ``not`` of that matches everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.conditions import compile_mask

__all__ = ["Coded", "CodedMask", "Column", "compile_coded_mask", "decode"]


@dataclass(frozen=True)
class Coded:
    """A categorical column: ``values`` (the distinct values) and per row an index into them,
    -1 where the session lacks the field (numpy's -1 then picks the absent entry appended
    after the values)."""

    values: Sequence[Any]
    codes: np.ndarray  # signed integers


Column = np.ndarray | Coded
CodedMask = Callable[[Mapping[str, Column], int], np.ndarray]


def decode(col: Column) -> np.ndarray:
    """The plain array ``compile_mask`` reads (objects, None where absent)."""
    if isinstance(col, Coded):
        return np.array([*col.values, None], dtype=object)[col.codes]
    return col


def compile_coded_mask(spec: Any) -> CodedMask:
    """Compile a (valid) condition to ``mask(cols, n)``; cols may hold ``Coded`` columns."""
    compile_mask(spec)  # validates with the serving path's messages
    return _node(spec)


def _node(spec: Mapping[str, Any]) -> CodedMask:
    parts: list[CodedMask] = []
    for key, value in spec.items():
        if key in ("all", "any"):
            subs = [_node(v) for v in value]
            combine = np.logical_and.reduce if key == "all" else np.logical_or.reduce
            parts.append(
                lambda cols, n, subs=subs, combine=combine: combine([s(cols, n) for s in subs])
            )
        elif key == "not":
            sub = _node(value)
            parts.append(lambda cols, n, sub=sub: ~sub(cols, n))
        else:
            parts.append(_leaf(str(key), value))
    if len(parts) == 1:
        return parts[0]
    return lambda cols, n: np.logical_and.reduce([p(cols, n) for p in parts])


def _leaf(path: str, value: Any) -> CodedMask:
    engine_mask = compile_mask({path: value})

    def mask(cols: Mapping[str, Column], n: int) -> np.ndarray:
        col = cols.get(path)
        if col is None:  # not carried (or undeclared): absent, matches nothing
            return np.zeros(n, dtype=bool)
        if isinstance(col, Coded):
            lookup = engine_mask({path: np.array([*col.values, None], dtype=object)})
            return lookup[col.codes]
        return engine_mask({path: col})

    return mask
