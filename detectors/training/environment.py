"""Is this the environment the shipped models were trained in? (constraints.txt)

The training commands are deterministic for one numeric stack, and only for one: a newer
numpy, scipy, librosa, soxr or onnxruntime moves the features or the export by a few ulps
and the ONNX file's digest with them. `constraints.txt` pins every package `make setup`
installs, and its header names the Debian ffmpeg that encodes the codec views and the SIMD
targets numpy dispatched to on the CPU that trained the shipped files. A training
command reads both at its start and says what differs, so a digest that does not match a
card is explained before the hour of training, not after it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel

from detectors.audio_io import REPO_ROOT

LOCK = REPO_ROOT / "constraints.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
_FFMPEG_PIN = re.compile(r"^#\s*ffmpeg==(\S+)")
_SIMD_PIN = re.compile(r"^#\s*numpy-simd==(\S+)")
_FFMPEG_VERSION = re.compile(r"^ffmpeg version (\S+)")


class Environment(BaseModel):
    """How this environment compares with the lock."""

    differences: list[str]
    ffmpeg: str | None
    numpy_simd: list[str]

    @property
    def matches_lock(self) -> bool:
        return not self.differences

    def summary(self) -> dict[str, object]:
        """What a training command's closing summary says of its environment."""
        return {"matches_lock": self.matches_lock, **self.model_dump()}


class Lock(BaseModel):
    """What constraints.txt pins: packages (normalized name -> version), and in its header
    the Debian ffmpeg and the SIMD targets numpy dispatched to where the models were trained."""

    pins: dict[str, str]
    ffmpeg: str | None = None
    numpy_simd: list[str] | None = None


def read_lock(path: Path = LOCK) -> Lock:
    pins: dict[str, str] = {}
    ffmpeg: str | None = None
    simd: list[str] | None = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if m := _FFMPEG_PIN.match(line):
            ffmpeg = m.group(1)
        elif m := _SIMD_PIN.match(line):
            simd = m.group(1).split(",")
        elif m := _PIN.match(line):
            pins[_normalize(m.group(1))] = m.group(2)
    return Lock(pins=pins, ffmpeg=ffmpeg, numpy_simd=simd)


def _normalize(name: str) -> str:
    # PEP 503: case and runs of -_. do not distinguish distributions.
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_ffmpeg() -> str | None:
    ff = shutil.which("ffmpeg")
    if ff is None:
        return None
    try:
        first = subprocess.run(
            [ff, "-version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _FFMPEG_VERSION.match(first[0]) if first else None
    return m.group(1) if m else None


def numpy_simd() -> list[str]:
    """The SIMD targets numpy's dispatched kernels use on this CPU. They move the training:
    the same seeded MLP fit gave other weights with numpy kept off AVX-512
    (NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL") on the 2026-12-04 machine."""
    import numpy as np

    found = np.show_config(mode="dicts")["SIMD Extensions"]["found"]
    return [str(f) for f in found]


def compare(
    lock: Lock,
    installed: dict[str, str],
    ffmpeg: str | None = None,
    simd: list[str] | None = None,
) -> list[str]:
    """One line per difference: a pinned package missing or at another version, ffmpeg
    (`None`: not found) and numpy's SIMD targets, each of the last two only where the lock
    names one."""
    out = []
    for name, want in sorted(lock.pins.items()):
        have = installed.get(name)
        if have is None:
            out.append(f"{name} not installed (locked {want})")
        elif have != want:
            out.append(f"{name} {have} (locked {want})")
    if lock.ffmpeg is not None and ffmpeg != lock.ffmpeg:
        out.append(f"ffmpeg {ffmpeg or 'not found'} (locked {lock.ffmpeg})")
    if lock.numpy_simd is not None and simd != lock.numpy_simd:
        out.append(
            f"numpy dispatches to {','.join(simd or []) or 'its baseline only'} on this CPU "
            f"(the models were trained where it dispatched to {','.join(lock.numpy_simd)})"
        )
    return out


def installed_distributions() -> dict[str, str]:
    return {_normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}


def check(path: Path = LOCK) -> Environment:
    """This environment against the lock (a missing lock file is one difference)."""
    ffmpeg = installed_ffmpeg()
    simd = numpy_simd()
    if not path.is_file():
        diffs = [f"no lock file at {path}"]
    else:
        diffs = compare(read_lock(path), installed_distributions(), ffmpeg, simd)
    return Environment(differences=diffs, ffmpeg=ffmpeg, numpy_simd=simd)


def warn_unless_locked(env: Environment) -> None:
    """Say at the start of a training run what will keep its files from the cards' digests."""
    if env.matches_lock:
        return
    shown = env.differences[:8]
    more = len(env.differences) - len(shown)
    print(
        "warning: this environment is not the one constraints.txt pins, so the model files "
        "will not match the digests the model cards name (run `make setup` in a fresh venv): "
        + "; ".join(shown)
        + (f"; and {more} more" if more else ""),
        file=sys.stderr,
        flush=True,
    )
