"""Train audio.synthetic_voice and write detectors/models/synthetic_voice{,.int8}.onnx.

    .venv/bin/python -m detectors.training.train_synthetic_voice [--data DIR]

Data: DIR/manifest.csv (default: $LIVEGUARD_SHARED_DATA/audio). Features: the runtime's
own hop vectors (mean/std of LFCC, delta-LFCC, MFCC and spectral-shape features over the
speech frames of 4 s contexts), from clean clips and their call degradations (μ-law, GSM via ffmpeg, noise at 10 and 20 dB,
packet loss). Calibration:
Platt scaling on speaker-disjoint out-of-fold logits, stored in the ONNX metadata.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from detectors.audio_io import shared_data_dir
from detectors.dataset import read_manifest
from detectors.degrade import ffmpeg_available
from detectors.metrics_eval import eer, roc_auc
from detectors.onnx_model import MODELS_DIR
from detectors.training import recipe
from detectors.training.featurize import featurize
from detectors.training.mlp import balanced_platt, calibrate, export_onnx


def quantize_int8(src: Path, dst: Path) -> None:
    """Edge variant: onnxruntime dynamic int8 quantization of the weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "audio")
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    args = ap.parse_args()
    t0 = time.time()
    if "gsm_codec" in recipe.AUG_CONDITIONS and not ffmpeg_available():
        raise SystemExit("training needs ffmpeg for the GSM augmentation: apt-get install ffmpeg")
    clips = read_manifest(args.data)
    labels = np.array([c.label for c in clips])
    views = [featurize(clips, c) for c in ("clean", *recipe.AUG_CONDITIONS)]
    folds = recipe.speaker_folds([c.speaker for c in clips])

    oof = np.full(len(clips), np.nan)
    x_clean, clip_clean = views[0]
    for k in range(recipe.N_FOLDS):
        params = recipe.fit(views, labels, folds != k)
        lg = recipe.clip_logits(params.logits(x_clean), clip_clean, len(clips))
        oof[folds == k] = lg[folds == k]
    ok = ~np.isnan(oof)
    cv_eer, cv_auc = eer(oof[ok], labels[ok])[0], roc_auc(oof[ok], labels[ok])
    a, b = balanced_platt(oof[ok], labels[ok])
    print(
        f"speaker-disjoint CV (clean): EER {cv_eer:.3f} AUC {cv_auc:.3f}; Platt a={a:.3f} b={b:.3f}"
    )

    final = recipe.fit(views, labels, np.ones(len(clips), dtype=bool))
    final = calibrate(final, oof[ok], labels[ok])
    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = args.out / "synthetic_voice.onnx"
    int8 = args.out / "synthetic_voice.int8.onnx"
    export_onnx(final, str(fp32), doc="liveguard audio.synthetic_voice; see synthetic_voice.md")
    meta = {
        "platt_a": f"{final.platt_a:.6f}",
        "platt_b": f"{final.platt_b:.6f}",
        "features": "frontend.clip_vectors v1 (mean/std of 64 frame features, 4 s context)",
        "n_parameters": str(final.n_parameters),
        "training_data": str(args.data),
    }
    set_metadata(fp32, meta)
    quantize_int8(fp32, int8)
    set_metadata(int8, meta)
    summary = {
        "n_clips": len(clips),
        "n_parameters": final.n_parameters,
        "cv_clean_eer": round(cv_eer, 4),
        "cv_clean_auc": round(cv_auc, 4),
        "platt": [final.platt_a, final.platt_b],
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
