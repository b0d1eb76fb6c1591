"""Fit the small calibrations of audio.replay and audio.voice_consistency; write
detectors/models/heuristics.json and print the measured separation.

    .venv/bin/python -m detectors.training.calibrate_heuristics [--data DIR] [--max-clips 400]

replay: bona fide clips (clean, 10 dB noise, mu-law telephony) vs the same clips through a
simulated loudspeaker + room (`degrade.simulate_replay`), speakers split 50/50 for a
held-out AUC. No real replay recordings were available: the result measures the cues on
simulated replays only.

voice_consistency: 3 s statistics embeddings of two different clips of the same speaker
vs two speakers of the same corpus (so that the channel does not give the answer).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from detectors.audio_io import load_audio, shared_data_dir
from detectors.dataset import read_manifest
from detectors.degrade import add_noise, mulaw_8k, simulate_replay
from detectors.frontend import SR, frame_db, power_spectrogram
from detectors.metrics_eval import eer, roc_auc
from detectors.params import HEURISTICS_FILE
from detectors.replay import replay_cues
from detectors.speaker_encoder import SpeakerEncoder
from detectors.training.mlp import balanced_platt, train_mlp
from detectors.voice_consistency import cosine_distance, partials_from_audio


def clip_cues(x: np.ndarray) -> np.ndarray | None:
    cues = []
    for s in range(0, len(x) - SR // 2, SR):
        p = power_spectrogram(x[s : s + SR])
        c = replay_cues(p, frame_db(p))
        if c is not None:
            cues.append(c)
    return np.mean(cues, axis=0) if cues else None


def fit_replay(clips: list, rng: np.random.Generator) -> dict:
    rows, labels, spk = [], [], []
    for i, c in enumerate(clips):
        x = load_audio(c.path)
        variants = [
            (x, 0),
            (add_noise(x, 10.0, i), 0),
            (mulaw_8k(x), 0),
            (simulate_replay(x, i), 1),
            (mulaw_8k(simulate_replay(x, i + 7)), 1),
        ]
        for v, y in variants:
            cu = clip_cues(v)
            if cu is not None:
                rows.append(cu)
                labels.append(y)
                spk.append(c.speaker)
    X, y = np.array(rows), np.array(labels)
    speakers = sorted(set(spk))
    test_spk = set(rng.choice(speakers, len(speakers) // 2, replace=False))
    te = np.array([s in test_spk for s in spk])
    p = train_mlp(X[~te], y[~te], hidden=0, epochs=200, l2=1e-2)
    lg = p.logits(X[te])
    auc, e = roc_auc(lg, y[te]), eer(lg, y[te])[0]
    a, b = balanced_platt(lg, y[te])
    final = train_mlp(X, y, hidden=0, epochs=200, l2=1e-2)
    w = final.w2[:, 0] * a
    bias = float(final.b2[0] * a + b)
    print(f"replay (simulated), held-out speakers: AUC {auc:.3f} EER {e:.3f} (n={te.sum()})")
    return {
        "mean": final.mean.tolist(),
        "std": final.std.tolist(),
        "weights": w.tolist(),
        "bias": bias,
        "heldout_auc": round(auc, 4),
        "heldout_eer": round(e, 4),
    }


def fit_voice(clips: list, rng: np.random.Generator) -> dict:
    """Same pipeline as the detector: one embedding per 1 s window from its last 0.6 s of
    speech, two window embeddings averaged; pairs from the two halves of a clip (same
    speaker, other speech) and from another speaker of the same corpus."""
    encoder = SpeakerEncoder()
    by_spk: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for c in clips:
        x = load_audio(c.path)
        for part in (x[: len(x) // 2], x[len(x) // 2 :]):
            partials = partials_from_audio(part)
            if len(partials) >= 2:
                emb = encoder.embed(np.stack(partials[:2])).mean(axis=0)
                by_spk[(c.corpus, c.speaker)].append(emb)
    d, y = [], []
    keys = [k for k, v in by_spk.items() if len(v) >= 2]
    for k in keys:
        v = by_spk[k]
        d.append(cosine_distance(v[0], v[-1]))
        y.append(0)
        others = [o for o in keys if o[0] == k[0] and o != k]
        if others:
            o = others[rng.integers(len(others))]
            d.append(cosine_distance(v[0], by_spk[o][0]))
            y.append(1)
    d_arr, y_arr = np.array(d), np.array(y)
    auc, e = roc_auc(d_arr, y_arr), eer(d_arr, y_arr)[0]
    a, b = balanced_platt(d_arr, y_arr)
    print(
        f"voice change, same vs different speaker (2 x 0.6 s of speech): AUC {auc:.3f} "
        f"EER {e:.3f} (pairs={len(y)})"
    )
    return {"platt_a": a, "platt_b": b, "auc": round(auc, 4), "eer": round(e, 4), "pairs": len(y)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "audio")
    ap.add_argument("--max-clips", type=int, default=400)
    ap.add_argument("--only", choices=["replay", "voice_consistency"], default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    bona = [c for c in read_manifest(args.data) if c.label == 0]
    idx = rng.permutation(len(bona))[: args.max_clips]
    subset = [bona[i] for i in sorted(idx)]
    out = json.loads(HEURISTICS_FILE.read_text()) if HEURISTICS_FILE.is_file() else {}
    if args.only in (None, "replay"):
        out["replay"] = fit_replay(subset, rng)
    if args.only in (None, "voice_consistency"):
        out["voice_consistency"] = fit_voice(bona, rng)
    HEURISTICS_FILE.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {HEURISTICS_FILE}")


if __name__ == "__main__":
    main()
