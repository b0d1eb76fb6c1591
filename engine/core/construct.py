"""Build trusted pydantic models without re-validating them, on the decision hot path.

``model_construct`` spends most of its time on bookkeeping we do not need for values the
engine itself produced; this fills the instance dict directly (defaults included), which
is what ``model_construct`` does minus the per-call introspection.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

M = TypeVar("M", bound=BaseModel)

_DEFAULTS: dict[type, tuple[dict[str, Any], set[str]]] = {}


def _defaults(cls: type[BaseModel]) -> tuple[dict[str, Any], set[str]]:
    cached = _DEFAULTS.get(cls)
    if cached is None:
        defaults: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            if info.default is not PydanticUndefined:
                defaults[name] = info.default
            elif info.default_factory is not None:
                defaults[name] = info.default_factory()  # type: ignore[call-arg]
        cached = _DEFAULTS[cls] = (defaults, set(cls.model_fields))
    return cached


def build(cls: type[M], **values: Any) -> M:
    """An instance of ``cls`` from already-valid values (only for engine-made data)."""
    cached = _DEFAULTS.get(cls)
    defaults, names = cached if cached is not None else _defaults(cls)
    obj = _new(cls)
    if len(values) < len(names):
        values = {**defaults, **values}
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", names)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


_new = object.__new__
_set = object.__setattr__
