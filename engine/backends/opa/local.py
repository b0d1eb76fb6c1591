"""OPA's own evaluator (``opa_bindings``), loaded from the folder the fetch script fills.

``opa-golib-python-bindings`` ships OPA's Go evaluator as a shared library with a ctypes
wrapper. Its metadata asks for Python 3.14, so it is not installed into the venv:
``scripts/fetch_opa_evaluator.sh`` downloads the wheel and unpacks it into ``.cache/opa``
(or ``$LIVEGUARD_OPA_EVALUATOR_DIR``), and this module imports it from there. It serves as
the reference (oracle) for rego-cpp in tests and benchmarks, as the OPA compile check in
``policy lint``, and as the evaluator behind the test OPA server.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

FETCH_SCRIPT = "scripts/fetch_opa_evaluator.sh"
_ROOT = Path(__file__).resolve().parents[3]  # the project root (engine/backends/opa/local.py)


def evaluator_dir() -> Path:
    return Path(os.environ.get("LIVEGUARD_OPA_EVALUATOR_DIR") or _ROOT / ".cache" / "opa")


def opa_engine_class() -> Any | None:
    """``opa_bindings.OpaEngine`` if the evaluator has been fetched, else None."""
    folder = evaluator_dir()
    if not (folder / "opa_bindings" / "__init__.py").is_file():
        return None
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    try:
        return importlib.import_module("opa_bindings").OpaEngine
    except (ImportError, OSError):
        return None


def missing_message() -> str:
    return (
        f"OPA's evaluator is not available in {evaluator_dir()}; run {FETCH_SCRIPT} "
        "(it downloads opa-golib-python-bindings==0.4.4 into .cache/opa)"
    )
