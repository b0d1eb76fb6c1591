"""Labelled audio sets in the shared-data layout: DIR/manifest.csv with path,label[,system,speaker]."""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Clip(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    label: int  # 1 = spoof, 0 = bona fide
    system: str
    speaker: str
    corpus: str


def read_manifest(data_dir: Path) -> list[Clip]:
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found (expected path,label[,system] columns)")
    clips = []
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            label = row["label"].strip().lower()
            if label not in {"bonafide", "spoof", "0", "1", "real", "fake"}:
                raise ValueError(f"{manifest}: unknown label {row['label']!r}")
            is_spoof = label in {"spoof", "1", "fake"}
            clips.append(
                Clip(
                    path=data_dir / row["path"],
                    label=int(is_spoof),
                    system=(row.get("system") or ("spoof" if is_spoof else "bonafide")).strip(),
                    speaker=(row.get("speaker") or row["path"]).strip(),
                    corpus=(row.get("corpus") or "").strip(),
                )
            )
    return clips
