"""Is this the environment the shipped models were trained in? (constraints.txt)

The training commands are deterministic for one numeric stack, and only for one: a newer
numpy, scipy, librosa, soxr or onnxruntime moves the features or the export by a few ulps
and the ONNX file's digest with them. `constraints.txt` pins every package `make setup`
installs, and its header names the Debian ffmpeg that encodes the codec views. A training
command reads both at its start and says what differs, so a digest that does not match a
card is explained before the hour of training, not after it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel

from detectors.audio_io import REPO_ROOT

LOCK = REPO_ROOT / "constraints.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
_FFMPEG_PIN = re.compile(r"^#\s*ffmpeg==(\S+)")
_FFMPEG_VERSION = re.compile(r"^ffmpeg version (\S+)")


class Environment(BaseModel):
    """How this environment compares with the lock."""

    lock: str
    differences: list[str]
    ffmpeg: str | None

    @property
    def matches_lock(self) -> bool:
        return not self.differences

    def summary(self) -> dict[str, object]:
        """What a training command's closing summary says of its environment."""
        return {
            "matches_lock": self.matches_lock,
            "differences": self.differences,
            "ffmpeg": self.ffmpeg,
        }


def read_lock(path: Path = LOCK) -> tuple[dict[str, str], str | None]:
    """The lock's pins (normalized distribution name -> version) and its ffmpeg version."""
    pins: dict[str, str] = {}
    ffmpeg: str | None = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if m := _FFMPEG_PIN.match(line):
            ffmpeg = m.group(1)
        elif m := _PIN.match(line):
            pins[_normalize(m.group(1))] = m.group(2)
    return pins, ffmpeg


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


def compare(
    pins: dict[str, str],
    ffmpeg_pin: str | None,
    installed: dict[str, str],
    ffmpeg: str | None,
) -> list[str]:
    """One line per difference: a pinned package missing or at another version, ffmpeg."""
    out = []
    for name, want in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            out.append(f"{name} not installed (locked {want})")
        elif have != want:
            out.append(f"{name} {have} (locked {want})")
    if ffmpeg_pin is not None and ffmpeg != ffmpeg_pin:
        out.append(f"ffmpeg {ffmpeg or 'not found'} (locked {ffmpeg_pin})")
    return out


def installed_distributions() -> dict[str, str]:
    return {_normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}


def check(path: Path = LOCK) -> Environment:
    """This environment against the lock (a missing lock file is one difference)."""
    ffmpeg = installed_ffmpeg()
    if not path.is_file():
        return Environment(lock=str(path), differences=[f"no lock file at {path}"], ffmpeg=ffmpeg)
    pins, ffmpeg_pin = read_lock(path)
    diffs = compare(pins, ffmpeg_pin, installed_distributions(), ffmpeg)
    return Environment(lock=str(path), differences=diffs, ffmpeg=ffmpeg)


def warn_unless_locked(env: Environment) -> None:
    """Say at the start of a training run what will keep its files from the cards' digests."""
    import sys

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
