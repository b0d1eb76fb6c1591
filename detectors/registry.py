"""Detector registry: entry-point discovery plus validation at registration time.

Plugins are checked when they are registered, not when first called (pluggy's lesson): a
detector that does not satisfy the protocol fails at load with a message that names the
plugin and the mismatch.

Stage 2: a detector class may declare ``second_pass_only = True``: it is heavier and runs
only on the windows a decision's ``second_pass`` obligation asks for. `discover()` still
loads it (live sessions split it into the second-pass pool with
`detectors.second_pass.split_detectors`); ``discover(edge_only=True)`` leaves it out, for
callers that run every loaded detector on every window (analysis, benchmarks).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from detectors.protocol import DATA_CATEGORIES, Detector
from signals import Modality
from signals.model import SIGNAL_NAME

ENTRY_POINT_GROUP = "liveguard.detectors"
SEMVER = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.\-]+)?$")
_METHODS: dict[str, int] = {
    "start": 0,
    "stop": 0,
    "status": 0,
    "new_state": 0,
    "process": 2,
}


class DetectorRegistrationError(ValueError):
    """A plugin does not satisfy the Detector protocol."""

    code = "detector_invalid"

    def __init__(self, plugin: str, mismatch: str) -> None:
        super().__init__(f"detector plugin '{plugin}': {mismatch}")
        self.plugin = plugin
        self.mismatch = mismatch


def _positional_arity(fn: Any) -> tuple[int, int] | None:
    """(required, maximum) positional parameters of a bound method; None if unknowable."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    required = maximum = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            maximum = 1_000
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            maximum += 1
            if p.default is p.empty:
                required += 1
    return required, maximum


def validate_detector(plugin: str, det: Any) -> None:
    """Raise DetectorRegistrationError naming `plugin` and the first mismatch found."""

    def fail(msg: str) -> None:
        raise DetectorRegistrationError(plugin, msg)

    name = getattr(det, "name", None)
    if not isinstance(name, str) or not SIGNAL_NAME.match(name):
        fail(f"attribute 'name' must be a signal name like 'audio.synthetic_voice', got {name!r}")
    version = getattr(det, "version", None)
    if not isinstance(version, str) or not SEMVER.match(version):
        fail(f"attribute 'version' must be semver like '1.0.0', got {version!r}")
    modality = getattr(det, "modality", None)
    try:
        modality = Modality(modality)
    except ValueError:
        fail(f"attribute 'modality' must be one of {[m.value for m in Modality]}, got {modality!r}")
    if name.split(".", 1)[0] != modality.value:
        fail(f"name {name!r} does not start with its modality {modality.value!r}")
    consumes = getattr(det, "consumes", None)
    if not isinstance(consumes, tuple | list | frozenset) or not consumes:
        fail("attribute 'consumes' must be a non-empty tuple of data elements")
    for element in consumes:
        if not isinstance(element, str) or element.split(".", 1)[0] not in DATA_CATEGORIES:
            fail(f"consumes {element!r}: category must be one of {sorted(DATA_CATEGORIES)}")
    cfg = getattr(det, "config_model", None)
    if not (inspect.isclass(cfg) and issubclass(cfg, BaseModel)):
        fail(f"attribute 'config_model' must be a pydantic BaseModel class, got {cfg!r}")
    for method, nargs in _METHODS.items():
        fn = getattr(det, method, None)
        if not callable(fn):
            fail(f"missing method '{method}()'")
        arity = _positional_arity(fn)
        if arity is not None and not (arity[0] <= nargs <= arity[1]):
            fail(
                f"method '{method}' must accept {nargs} positional argument(s), "
                f"its signature is {inspect.signature(fn)}"
            )
    batch = getattr(det, "process_batch", None)
    if batch is not None and not callable(batch):
        fail("'process_batch' must be a method")
    if not isinstance(getattr(det, "second_pass_only", False), bool):
        fail("attribute 'second_pass_only' must be a bool")


def second_pass_only(det: Any) -> bool:
    """True for a stage-2 detector (never among the always-on edge detectors)."""
    return getattr(det, "second_pass_only", False) is True


class DetectorRegistry:
    """Named, validated detector instances."""

    def __init__(self) -> None:
        self._detectors: dict[str, Detector] = {}

    def register(self, det: Any, plugin: str | None = None) -> Detector:
        plugin = plugin or getattr(det, "name", None) or type(det).__name__
        validate_detector(plugin, det)
        if det.name in self._detectors:
            raise DetectorRegistrationError(
                plugin, f"a detector named {det.name!r} is already registered"
            )
        self._detectors[det.name] = det
        return det

    def get(self, name: str) -> Detector:
        return self._detectors[name]

    def names(self) -> list[str]:
        return list(self._detectors)

    def __iter__(self) -> Any:
        return iter(self._detectors.values())

    def __len__(self) -> int:
        return len(self._detectors)


def instantiate(plugin: str, target: Any, config: dict[str, Any] | None = None) -> Any:
    """An entry point may name a class/factory (called with the config) or an instance."""
    if inspect.isclass(target) or (callable(target) and not hasattr(target, "process")):
        try:
            return target(config) if config is not None else target()
        except Exception as exc:  # a broken plugin must name itself
            raise DetectorRegistrationError(plugin, f"could not be constructed: {exc}") from exc
    return target


def load_entry_point(ep: EntryPoint, config: dict[str, Any] | None = None) -> Any:
    try:
        target = ep.load()
    except Exception as exc:
        raise DetectorRegistrationError(ep.name, f"cannot import {ep.value}: {exc}") from exc
    return instantiate(ep.name, target, config)


def discover(
    names: Iterable[str] | None = None,
    configs: dict[str, dict[str, Any]] | None = None,
    group: str = ENTRY_POINT_GROUP,
    edge_only: bool = False,
) -> DetectorRegistry:
    """Load (optionally a subset of) the detectors registered under the entry-point group;
    with ``edge_only`` without the second-pass-only ones, even when named."""
    wanted = set(names) if names is not None else None
    configs = configs or {}
    registry = DetectorRegistry()
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if wanted is not None and ep.name not in wanted:
            continue
        det = load_entry_point(ep, configs.get(ep.name))
        if edge_only and second_pass_only(det):
            continue
        registry.register(det, plugin=ep.name)
    return registry
