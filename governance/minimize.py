"""Run-time data minimization: a policy sees only what its data-flow manifest declares.

This runs on every request, so the declared field set is compiled once into a tree
(``Projection``) and applying it is a single walk over the request dict. Matching is by
path segment, never by string prefix: ``device`` covers ``device.posture`` but
``device.pos`` covers nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

from governance.fields import ALWAYS_READABLE_ROOTS, CORRELATION_FIELDS

__all__ = ["Projection", "ancestors", "is_declared", "minimize", "retain"]


class _All:
    """Tree marker: keep this whole subtree."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ALL"


_ALL: Final = _All()
_Tree = dict[str, "_Tree | _All"]

#: Top-level request keys that are not personal data: the policy selector and engine output.
_PASSTHROUGH_ROOTS: frozenset[str] = frozenset({"policy"}) | ALWAYS_READABLE_ROOTS


def ancestors(path: str) -> Iterator[str]:
    """``a.b.c`` → ``a.b``, ``a`` (most specific first)."""
    end = path.rfind(".")
    while end > 0:
        yield path[:end]
        end = path.rfind(".", 0, end)


def is_declared(path: str, allowed: frozenset[str]) -> bool:
    """True when ``path`` itself or one of its ancestors is declared (or always readable).

    ``device`` covers ``device.posture``; ``signals.audio.synthetic_voice`` covers
    ``signals.audio.synthetic_voice.score``; ``device.pos`` never covers ``device.posture``.
    """
    if path in allowed or path in CORRELATION_FIELDS:
        return True
    if path.split(".", 1)[0] in ALWAYS_READABLE_ROOTS:
        return True
    return any(a in allowed for a in ancestors(path))


def _copy(value: Any) -> Any:
    # Only containers need copying; scalars and frozen models are immutable.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _project(data: Mapping[str, Any], tree: _Tree, copy: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        node = tree.get(key)
        if node is None:
            continue
        if node is _ALL:
            out[key] = _copy(value) if copy else value
        elif isinstance(value, Mapping):
            sub = _project(value, node, copy)  # type: ignore[arg-type]
            if sub:
                out[key] = sub
    return out


def _signal_name(signal: Any) -> str | None:
    # A wire-format dict, or a signals.Signal (or anything shaped like one).
    name = signal.get("name") if isinstance(signal, Mapping) else getattr(signal, "name", None)
    return name if isinstance(name, str) else None


class Projection:
    """A declared field set compiled for fast, repeated application to requests."""

    __slots__ = ("_all_signals", "_signal_modalities", "_signal_names", "_tree", "allowed")

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        tree: _Tree = {root: _ALL for root in _PASSTHROUGH_ROOTS}
        self._all_signals = False
        self._signal_modalities: frozenset[str] = frozenset()
        self._signal_names: frozenset[str] = frozenset()
        modalities: set[str] = set()
        names: set[str] = set()
        for path in allowed | CORRELATION_FIELDS:
            parts = path.split(".")
            if parts[0] == "signals":
                # Signals are a list keyed by name, not a nested mapping.
                if len(parts) == 1:
                    self._all_signals = True
                elif len(parts) == 2:
                    modalities.add(parts[1])
                else:  # signals.<modality>.<what>[.<below>] keeps the whole signal
                    names.add(f"{parts[1]}.{parts[2]}")
                continue
            _insert(tree, parts)
        self._signal_modalities = frozenset(modalities)
        self._signal_names = frozenset(names)
        self._tree = tree

    @classmethod
    def from_allowed(cls, allowed: Iterable[str]) -> Projection:
        """Cached per distinct field set: manifests are few, requests are many."""
        return _compiled(frozenset(allowed))

    def keeps_signal(self, name: str) -> bool:
        if self._all_signals or name in self._signal_names:
            return True
        return name.split(".", 1)[0] in self._signal_modalities

    def apply(self, request: Mapping[str, Any], *, copy: bool = True) -> dict[str, Any]:
        """A copy of ``request`` with only the declared fields (and ``session.id``).

        ``copy=False`` shares kept subtrees with ``request`` instead of copying them: for
        a request that is thrown away afterwards (a fresh dump), not for one still in use.
        """
        out = _project(request, self._tree, copy)
        signals = request.get("signals")
        if isinstance(signals, list | tuple):
            kept = []
            for s in signals:
                name = _signal_name(s)
                if name is not None and self.keeps_signal(name):
                    kept.append(_copy(s) if copy else s)
            # Keep the key (possibly empty) so the request keeps its shape.
            out["signals"] = kept
        return out


def _insert(tree: _Tree, parts: list[str]) -> None:
    node = tree
    for i, part in enumerate(parts):
        child = node.get(part)
        if child is _ALL:
            return  # an ancestor is already kept whole
        if i == len(parts) - 1:
            node[part] = _ALL
            return
        if child is None:
            child = {}
            node[part] = child
        node = child  # type: ignore[assignment]


@lru_cache(maxsize=256)
def _compiled(allowed: frozenset[str]) -> Projection:
    return Projection(allowed)


def minimize(request: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """What the policy may see: only fields its manifest declares (plus ``session.id``)."""
    return Projection.from_allowed(allowed).apply(request)


def retain(request: Mapping[str, Any], retained: Iterable[str]) -> dict[str, Any]:
    """What the decision log may store: only fields the manifest retains beyond 0 days."""
    return Projection.from_allowed(retained).apply(request)
