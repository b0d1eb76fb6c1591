"""Loading shipped ONNX models with their digest (recorded on every decision for replay)."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import onnxruntime as ort

from detectors.vad import session_options

MODELS_DIR = Path(__file__).resolve().parent / "models"


class OnnxModel:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} is missing")
        self.path = path
        self.session = ort.InferenceSession(
            str(path), session_options(), providers=["CPUExecutionProvider"]
        )

    @cached_property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)
