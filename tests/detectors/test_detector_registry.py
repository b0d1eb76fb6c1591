"""Plugin contract: entry-point discovery and validation at registration."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from detectors.base import BaseDetector
from detectors.protocol import Detector, Window
from detectors.registry import (
    ENTRY_POINT_GROUP,
    DetectorRegistrationError,
    DetectorRegistry,
    discover,
    load_entry_point,
)
from signals import Modality, Signal

BUILT_INS = {
    "audio.quality",
    "audio.synthetic_voice",
    "audio.replay",
    "audio.voice_consistency",
    "av.lipsync",
    "behavior.turn_taking",
    "session.anomaly",
}


class GoodDetector(BaseDetector):
    name: ClassVar[str] = "audio.example"
    version: ClassVar[str] = "0.1.0"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("features.example",)

    def process(self, window: Window, state: Any) -> Signal | None:
        return None


def test_built_ins_are_discovered_through_entry_points() -> None:
    registry = discover()
    assert set(registry.names()) >= BUILT_INS
    for det in registry:
        assert isinstance(det, Detector)
        assert det.status().name == det.name


def test_a_valid_third_party_plugin_registers() -> None:
    reg = DetectorRegistry()
    reg.register(GoodDetector(), plugin="acme.example")
    assert reg.names() == ["audio.example"]


@pytest.mark.parametrize(
    ("attrs", "mismatch"),
    [
        ({"version": "1.0"}, "attribute 'version' must be semver"),
        ({"name": "Example"}, "attribute 'name' must be a signal name"),
        ({"name": "video.example"}, "does not start with its modality 'audio'"),
        ({"modality": "smell"}, "attribute 'modality' must be one of"),
        ({"consumes": ("raw_smell",)}, "consumes 'raw_smell': category must be one of"),
        ({"consumes": ()}, "attribute 'consumes' must be a non-empty tuple"),
        ({"config_model": dict}, "attribute 'config_model' must be a pydantic BaseModel"),
    ],
)
def test_protocol_mismatch_fails_at_registration_naming_plugin(
    attrs: dict[str, Any], mismatch: str
) -> None:
    det = GoodDetector()
    for k, v in attrs.items():
        setattr(det, k, v)
    with pytest.raises(DetectorRegistrationError) as err:
        DetectorRegistry().register(det, plugin="acme.broken")
    assert str(err.value).startswith("detector plugin 'acme.broken': ")
    assert mismatch in str(err.value)


class NoProcess:
    name = "audio.noprocess"
    version = "1.0.0"
    modality = Modality.audio
    consumes = ("raw_audio",)
    config_model = BaseModel

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> None: ...
    def new_state(self) -> None: ...


class WrongArity(NoProcess):
    name = "audio.wrongarity"

    def process(self, window: Window) -> None:  # missing the state argument
        return None


def test_missing_method_and_wrong_signature_are_named() -> None:
    with pytest.raises(DetectorRegistrationError, match=r"'acme.np': missing method 'process\(\)'"):
        DetectorRegistry().register(NoProcess(), plugin="acme.np")
    with pytest.raises(DetectorRegistrationError, match=r"method 'process' must accept 2"):
        DetectorRegistry().register(WrongArity(), plugin="acme.wa")


def test_duplicate_names_are_rejected() -> None:
    reg = DetectorRegistry()
    reg.register(GoodDetector(), plugin="a")
    with pytest.raises(DetectorRegistrationError, match="already registered"):
        reg.register(GoodDetector(), plugin="b")


def test_entry_point_that_cannot_import_names_itself() -> None:
    ep = EntryPoint("acme.missing", "acme_missing_module:Det", ENTRY_POINT_GROUP)
    with pytest.raises(DetectorRegistrationError, match=r"'acme.missing': cannot import"):
        load_entry_point(ep)


def test_entry_point_to_a_class_is_instantiated_and_validated() -> None:
    ep = EntryPoint("acme.wa", f"{__name__}:WrongArity", ENTRY_POINT_GROUP)
    det = load_entry_point(ep)
    with pytest.raises(DetectorRegistrationError, match=r"'acme\.wa'"):
        DetectorRegistry().register(det, plugin=ep.name)
    good = load_entry_point(EntryPoint("acme.good", f"{__name__}:GoodDetector", ENTRY_POINT_GROUP))
    assert isinstance(good, GoodDetector)


def test_detector_config_is_validated() -> None:
    from detectors.synthetic_voice import SyntheticVoiceDetector

    with pytest.raises(ValueError):
        SyntheticVoiceDetector({"variant": "fp64"})
    assert SyntheticVoiceDetector({"variant": "int8"}).config.variant == "int8"  # type: ignore[attr-defined]
