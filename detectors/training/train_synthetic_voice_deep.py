"""Train audio.synthetic_voice_deep 3.x (the second-pass model) and write
detectors/models/synthetic_voice_deep{,.int8}.onnx.

    nice -n 10 .venv/bin/python -m detectors.training.train_synthetic_voice_deep [--data DIR ...]
        [--loso-quick] [--no-loso]

Data: both shared sets by default, read together (speakers are shared across them).
Features: the edge screener's cached window arrays (`featurize.FEATURE_SETS["windows_v4"]`,
every call condition, under .cache/detectors) turned into `deep_input.deep_stats`; the model
adds the edge screener 4.x's one-class bona fide reference on them. Before
the final fit the command runs the leave-one-system-out protocol of `liveguard detectors
evaluate` (retrained per held-out system and speaker fold; `--loso-quick`: one refit per
system, see `Splits.loso_quick`) and prints its tables; calibration is Platt scaling on the
speaker-disjoint out-of-fold logits, inside the ONNX graph and in its metadata. Fixed
seeds: rerunning gives the same ONNX files (the card names their digests).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from detectors.onnx_model import MODELS_DIR
from detectors.training import environment
from detectors.training.deep_stats import DeepStatsV1
from detectors.training.evaluation import Splits, format_report, retrain_protocol
from detectors.training.mlp import export_onnx
from detectors.training.stats_v2 import REFERENCE_DESCRIPTION
from detectors.training.train_synthetic_voice import (
    prepare,
    quantize_int8,
    require_training_tools,
    set_metadata,
    sha256,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    ap.add_argument("--report", type=Path, default=None, help="Also write the tables here.")
    ap.add_argument("--no-loso", action="store_true", help="Skip LOSO and corpus-out (faster).")
    ap.add_argument("--loso-quick", action="store_true", help="One LOSO refit per system.")
    args = ap.parse_args()
    t0 = time.time()
    require_training_tools()
    env = environment.check()
    environment.warn_unless_locked(env)
    rec = DeepStatsV1()
    dirs, clips, conditions, feats, report = prepare(args.data, rec, "audio.synthetic_voice_deep")
    protocol = retrain_protocol(
        report,
        clips,
        rec,
        feats,
        conditions,
        loso=not args.no_loso,
        corpus_out=not args.no_loso,
        loso_quick=args.loso_quick,
    )
    t_protocol = time.time() - t0
    tables = format_report(report)
    print(tables, flush=True)  # before the final fit: a failing export loses nothing
    if args.report:
        args.report.write_text(tables + "\n")
        args.report.with_suffix(".json").write_text(report.model_dump_json(indent=2))
    splits = Splits(clips)
    labels = splits.labels
    cal = protocol.calibration
    train_views = []
    for c in rec.train_conditions:
        x, clip = feats[(rec.feature_set, c)]
        train_views.append((rec.prepare(x), clip))
    final = rec.fit(
        train_views, labels, np.ones(len(clips), dtype=bool), seed=0, groups=splits.strata
    )
    params = final.params
    params.platt_a, params.platt_b = cal.platt_a, cal.platt_b
    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = args.out / "synthetic_voice_deep.onnx"
    int8 = args.out / "synthetic_voice_deep.int8.onnx"
    export_onnx(
        params,
        str(fp32),
        doc="liveguard audio.synthetic_voice_deep 3.x; see synthetic_voice_deep.md",
    )
    meta = {
        "platt_a": f"{params.platt_a:.6f}",
        "platt_b": f"{params.platt_b:.6f}",
        "operating_rule": report.operating_rule,
        "operating_score": f"{cal.operating_score:.6f}",
        "features": "deep_input.deep_stats (window_stats_v2 + lag-2/4 band flux + band acceleration + fine structure)",
        "ensemble": f"{rec.n_models} x MLP-{rec.hidden}, group-DRO eta {rec.dro_eta}",
        "n_parameters": str(params.n_parameters),
        "reference": REFERENCE_DESCRIPTION if rec.reference else "none",
        "training_data": ",".join(d.name for d in dirs),
    }
    set_metadata(fp32, meta)
    quantize_int8(fp32, int8)
    set_metadata(int8, meta)
    summary = {
        "n_clips": len(clips),
        "n_parameters": params.n_parameters,
        "platt": [round(params.platt_a, 6), round(params.platt_b, 6)],
        "operating_rule": report.operating_rule,
        "operating_logit": report.operating_logit,
        "operating_score": round(cal.operating_score, 6),
        "sha256": {fp32.name: sha256(fp32), int8.name: sha256(int8)},
        "seconds_protocol": round(t_protocol, 1),
        "seconds": round(time.time() - t0, 1),
        "environment": env.summary(),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
