"""Calibration parameters of the heuristic detectors, fitted by
`detectors/training/calibrate_heuristics.py` and shipped as `models/heuristics.json`."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from detectors.onnx_model import MODELS_DIR

HEURISTICS_FILE = MODELS_DIR / "heuristics.json"


@lru_cache(maxsize=1)
def heuristics() -> dict[str, Any]:
    if HEURISTICS_FILE.is_file():
        return json.loads(HEURISTICS_FILE.read_text())
    return {}
