"""Train audio.synthetic_voice 4.x and write detectors/models/synthetic_voice{,.int8}.onnx.

    nice -n 10 .venv/bin/python -m detectors.training.train_synthetic_voice [--data DIR ...]

Data: both shared sets by default ($LIVEGUARD_SHARED_DATA/audio and .../audio_neural, read
together: speakers are shared across them). Features: `frontend.window_stats_v3` of every
1 s window, from the clean clips and their call conditions (`stats_v2.TRAIN_CONDITIONS`,
ffmpeg codecs included), cached under .cache/detectors. Model: the group-DRO MLP plus the
one-class bona fide reference (`stats_v2.StatsV6`: 4.1's recipe with the Vorbis and MP3
128 kbit/s views, `bona_fide_reference.py`), one graph.
Before the final fit the command runs the whole leave-one-system-out protocol of `liveguard
detectors evaluate` (retrained per held-out system and speaker fold, every condition) and
prints its tables; calibration is Platt scaling on the speaker-disjoint out-of-fold logits,
stored in the ONNX graph and metadata. Fixed seeds: rerunning gives the same ONNX files (the card names their digests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from detectors.audio_io import shared_data_dir
from detectors.dataset import Clip, read_manifest, read_sets
from detectors.degrade import available_conditions, ffmpeg_available
from detectors.onnx_model import MODELS_DIR
from detectors.synthetic_voice import SyntheticVoiceDetector
from detectors.training import environment
from detectors.training.evaluation import EvaluationReport, Splits, format_report, retrain_protocol
from detectors.training.featurize import featurize_many, merge_features
from detectors.training.mlp import REFERENCE_NODES, export_onnx
from detectors.training.recipes import Recipe, get_recipe
from detectors.training.stats_v2 import REFERENCE_DESCRIPTION, StatsV6

#: (feature set, condition) -> (per-window features, their clip index), as featurize_many gives.
Features = dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]


def quantize_int8(src: Path, dst: Path) -> None:
    """Edge variant: onnxruntime dynamic int8 quantization of the weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, nodes_to_exclude=list(REFERENCE_NODES)
    )


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def require_training_tools() -> None:
    """Fail at once, not after a protocol of minutes, when the export or the codec views
    cannot run."""
    try:
        import onnx  # noqa: F401 - the export needs it
    except ImportError:
        raise SystemExit(
            "training needs onnx for the export: .venv/bin/pip install -e '.[train]' "
            "(or just 'onnx>=1.16,<1.18')"
        ) from None
    if not ffmpeg_available():
        raise SystemExit("training needs ffmpeg for the codec augmentation: apt-get install ffmpeg")


def prepare(
    data: list[Path] | None, rec: Recipe, detector: str, augment: Path | None = None
) -> tuple[list[Path], list[Clip], list[str], Features, EvaluationReport]:
    """What every training command starts from: the data sets (both shared ones by
    default), their features under every condition the protocol and the recipe's training
    views need (cached), and an empty report for the protocol to fill.

    `augment`: a folder of training-aid spoofs (`detectors.training.vocoded`, built there
    when its manifest is missing); they join the clips after the data sets, with features
    for the recipe's training views only (they are never test clips)."""
    dirs = data or [shared_data_dir() / "audio", shared_data_dir() / "audio_neural"]
    missing = [d for d in dirs if not (d / "manifest.csv").is_file()]
    if missing:
        raise SystemExit(
            f"no manifest.csv in {', '.join(map(str, missing))}: pass --data DIR for each data "
            "set, or set LIVEGUARD_SHARED_DATA to the folder holding audio/ and audio_neural/"
        )
    clips = read_sets(dirs)
    conditions = available_conditions()
    needed = list(dict.fromkeys([*conditions, *rec.train_conditions]))
    feats = featurize_many(clips, needed, [rec.feature_set])
    if augment is not None:
        from detectors.training import vocoded

        if not (augment / "manifest.csv").is_file():
            vocoded.build(augment, vocoded.VOCODERS, vocoded.DEFAULT_LIMIT, 2)
        aug = read_manifest(augment)
        aug_feats = featurize_many(aug, list(rec.train_conditions), [rec.feature_set])
        feats = merge_features(feats, aug_feats, len(clips))
        clips = clips + aug
    report = EvaluationReport(
        data=[str(d) for d in dirs],
        model="(retrained)",
        recipe=rec.name,
        detector=detector,
        train_conditions=list(rec.train_conditions),
        unseen_conditions=[c for c in conditions if c not in rec.train_conditions],
    )
    return dirs, clips, conditions, feats, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    ap.add_argument("--report", type=Path, default=None, help="Also write the tables here.")
    ap.add_argument("--no-loso", action="store_true", help="Skip the LOSO protocol (faster).")
    ap.add_argument(
        "--augment",
        type=Path,
        default=None,
        help="Also train on the vocoded training aids in DIR (detectors.training.vocoded; "
        "built there when missing). Measured not to help: see synthetic_voice.md.",
    )
    args = ap.parse_args()
    t0 = time.time()
    require_training_tools()
    env = environment.check()
    environment.warn_unless_locked(env)
    # The recipe the shipped detector names (what `detectors evaluate` retrains by default),
    # so the two cannot drift apart.
    rec = get_recipe(SyntheticVoiceDetector.recipe)
    assert isinstance(rec, StatsV6), type(rec)
    dirs, clips, conditions, feats, report = prepare(
        args.data, rec, "audio.synthetic_voice", args.augment
    )
    protocol = retrain_protocol(
        report, clips, rec, feats, conditions, loso=not args.no_loso, corpus_out=not args.no_loso
    )
    labels = Splits(clips).labels
    cal = protocol.calibration

    train_views = []
    for c in rec.train_conditions:
        x, clip = feats[(rec.feature_set, c)]
        train_views.append((rec.prepare(x), clip))
    strata = Splits(clips).strata
    final = rec.fit(train_views, labels, np.ones(len(clips), dtype=bool), seed=0, groups=strata)
    params = final.params
    params.platt_a, params.platt_b = cal.platt_a, cal.platt_b
    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = args.out / "synthetic_voice.onnx"
    int8 = args.out / "synthetic_voice.int8.onnx"
    export_onnx(
        params, str(fp32), doc="liveguard audio.synthetic_voice 4.x; see synthetic_voice.md"
    )
    meta = {
        "platt_a": f"{params.platt_a:.6f}",
        "platt_b": f"{params.platt_b:.6f}",
        "operating_rule": report.operating_rule,
        "operating_score": f"{cal.operating_score:.6f}",
        "features": "frontend.window_stats_v3 (window_stats_v2 " + ",".join(rec.parts) + ", fine)",
        "n_parameters": str(params.n_parameters),
        "reference": REFERENCE_DESCRIPTION,
        "training_data": ",".join(d.name for d in dirs),
    }
    set_metadata(fp32, meta)
    quantize_int8(fp32, int8)
    set_metadata(int8, meta)
    tables = format_report(report)
    print(tables)
    if args.report:
        args.report.write_text(tables + "\n")
        args.report.with_suffix(".json").write_text(report.model_dump_json(indent=2))
    summary = {
        "n_clips": len(clips),
        "n_parameters": params.n_parameters,
        "operating_rule": report.operating_rule,
        "platt": [round(params.platt_a, 6), round(params.platt_b, 6)],
        "operating_logit": report.operating_logit,
        "operating_score": round(cal.operating_score, 6),
        "sha256": {fp32.name: sha256(fp32), int8.name: sha256(int8)},
        "seconds": round(time.time() - t0, 1),
        "environment": env.summary(),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
