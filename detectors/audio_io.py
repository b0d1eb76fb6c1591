"""Reading audio files and locating the shared data, with one clear error for bad input."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
REPO_ROOT = Path(__file__).resolve().parent.parent


class AudioInputError(ValueError):
    """Unreadable or empty audio; the CLI maps it to exit code 2."""

    code = "audio_invalid"


def shared_data_dir() -> Path:
    """`LIVEGUARD_SHARED_DATA`, else `../shared/data` relative to the repository root."""
    env = os.environ.get("LIVEGUARD_SHARED_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def load_audio(path: str | Path, channels: str = "mix") -> np.ndarray:
    """Float32 at 16 kHz. `channels="mix"` averages to mono; "split" keeps (channels, samples)."""
    p = Path(path)
    if not p.is_file():
        raise AudioInputError(f"cannot read audio {p}: no such file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception:
        try:  # formats soundfile cannot read (mp3/m4a via audioread) go through librosa
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, sr = librosa.load(str(p), sr=None, mono=False)
            data = np.atleast_2d(y).T.astype(np.float32)
        except Exception:
            if p.stat().st_size == 0:
                raise AudioInputError(f"audio {p} is empty") from None
            raise AudioInputError(f"cannot read audio {p}: not a supported audio file") from None
    if data.size == 0 or data.shape[0] == 0:
        raise AudioInputError(f"audio {p} is empty")
    chans = data.T  # (channels, samples)
    if sr != SR:
        import librosa

        chans = np.stack([librosa.resample(c, orig_sr=sr, target_sr=SR) for c in chans])
    chans = np.nan_to_num(chans.astype(np.float32))
    if channels == "split":
        return chans
    return chans.mean(axis=0)
