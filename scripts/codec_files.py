"""Real speech and clones saved the way recordings reach an investigator, through
`liveguard analyze --manifest` end to end (file decoding included).

A seeded sample of the shared set (8 clips per bona fide corpus, 4 per spoof system) is
written by Debian's ffmpeg as WAV (as is), Ogg Vorbis (its default quality), MP3 128 kbit/s,
AAC 96 kbit/s (M4A) and Opus 24 kbit/s (WebM), then analysed with the bundled
`support-password-reset` policy. Printed per container: the median synthetic-voice score of
the real clips, the share of them at or above 0.5 and at the operating point, the clones'
share, ROC AUC, and the actions given to real clips. The clips are the models' training
data (in-sample): this measures what a file format does to a score, not generalisation.

    .venv/bin/python scripts/codec_files.py [--out DIR]

Ends with one `RESULT key=value ...` line (false alarm % at 0.5 per container).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.audio_io import shared_data_dir  # noqa: E402
from detectors.onnx_model import MODELS_DIR, OnnxModel  # noqa: E402

CONTAINERS = {
    "wav": ("wav", []),
    "vorbis": ("ogg", ["-c:a", "libvorbis"]),
    "mp3_128k": ("mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "aac_96k": ("m4a", ["-c:a", "aac", "-b:a", "96k"]),
    "opus_24k": ("webm", ["-c:a", "libopus", "-b:a", "24k"]),
}


def sample(manifest: Path, seed: int = 1) -> list[dict[str, str]]:
    rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["label"], r["corpus"] if r["label"] == "bonafide" else r["system"])].append(r)
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for key in sorted(groups):
        out += rng.sample(groups[key], min(len(groups[key]), 8 if key[0] == "bonafide" else 4))
    return out


def build(out: Path, data: Path) -> Path:
    picked = sample(data / "manifest.csv")
    lines = ["path,label,system"]
    for i, r in enumerate(picked):
        for name, (ext, args) in CONTAINERS.items():
            dst = out / name / f"{i:03d}.{ext}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            cmd = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(data / r["path"]), *args]
            subprocess.run([*cmd, str(dst)], check=True)
            lines.append(f"{dst.relative_to(out)},{r['label']},{name}")
    manifest = out / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="Where the files go (a temp dir).")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="codec_files-"))
    manifest = build(out, shared_data_dir() / "audio")
    cmd = [str(ROOT / ".venv/bin/liveguard"), "analyze", "--manifest", str(manifest), "--jsonl"]
    proc = subprocess.run([*cmd, "--policy", "support-password-reset"], capture_output=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr.decode(errors="replace")[-2000:])
    op = float(OnnxModel(MODELS_DIR / "synthetic_voice.onnx").metadata["operating_score"])
    per: dict[str, dict[str, list]] = defaultdict(lambda: {"b": [], "s": [], "acts": []})
    for line in proc.stdout.decode().splitlines():
        r = json.loads(line)
        sv = [s["score"] for s in r["signals"] if s["name"] == "audio.synthetic_voice"]
        d = per[r["system"]]
        d["b" if r["label"] == "bonafide" else "s"].append(sv[0] if sv else np.nan)
        if r["label"] == "bonafide":
            d["acts"].append((r.get("decision") or {}).get("action"))
    result = []
    print(f"operating point {op:.3f}; files in {out}")
    for name in CONTAINERS:
        b, s = np.array(per[name]["b"]), np.array(per[name]["s"])
        auc = roc_auc_score(np.r_[np.zeros(len(b)), np.ones(len(s))], np.r_[b, s])
        acts = dict(Counter(per[name]["acts"]).most_common())
        print(
            f"{name:9s} real: median {np.median(b):.3f}, >=0.5 {np.mean(b >= 0.5) * 100:5.1f} %, "
            f">=op {np.mean(b >= op) * 100:5.1f} %; clones >=0.5 {np.mean(s >= 0.5) * 100:5.1f} %;"
            f" AUC {auc:.3f}; real given {acts}"
        )
        result.append(f"fa_{name}={np.mean(b >= 0.5) * 100:.1f}")
    print("RESULT " + " ".join(result))


if __name__ == "__main__":
    main()
