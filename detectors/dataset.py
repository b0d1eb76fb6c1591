"""Labelled audio sets in the shared-data layout: DIR/manifest.csv with path,label[,system,speaker].

Several sets can be read together (`read_sets`): the shared `audio/` and `audio_neural/` sets
share speakers (copy-synthesis and noise-suppressed clips keep their source's speaker), so
speaker-disjoint splits group on the `speaker` column across all of them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Clip(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    label: int  # 1 = spoof, 0 = bona fide
    system: str
    speaker: str
    corpus: str
    origin: str = ""
    #: the clip's place in its data set, the same wherever the data lies: the set folder's
    #: name and the manifest's path ("audio/librispeech/x.wav"); "" for clips built in code
    key: str = ""

    @property
    def pair_source(self) -> Path | None:
        """The bona fide clip a copy-synthesis spoof was made from, when `origin` names it
        ("... copy-synthesis of audio/<path>", as in `audio_neural`)."""
        m = re.search(r"copy-synthesis of (audio/\S+\.flac)", self.origin)
        if m:
            # origin paths are relative to the folder holding both sets (`audio/...`)
            return (self.path.parents[3] / m.group(1)).resolve()
        return None


#: what a manifest's label column may say (case and surrounding spaces ignored)
SPOOF_LABELS = frozenset({"spoof", "1", "fake"})
LABELS = SPOOF_LABELS | {"bonafide", "0", "real"}


def manifest_rows(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header (names stripped, lower case) and rows of a manifest CSV, as a spreadsheet
    exports it too: "CSV UTF-8" starts with a byte-order mark, which would otherwise become
    part of the first column's name. ValueError, naming the file, when it is empty, not
    UTF-8 or not readable as CSV."""
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise ValueError(
                    f"manifest {manifest} is empty: expected a path,label[,system] header"
                )
            names = [(f or "").strip().lower() for f in reader.fieldnames]
            reader.fieldnames = names
            return names, list(reader)
    except UnicodeDecodeError:
        raise ValueError(f"manifest {manifest} is not UTF-8 text") from None
    except csv.Error as exc:
        raise ValueError(f"manifest {manifest} is not a readable CSV: {exc}") from None


def read_manifest(data_dir: Path) -> list[Clip]:
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found (expected path,label[,system] columns)")
    clips = []
    names, rows = manifest_rows(manifest)
    if "path" not in names or "label" not in names:
        raise ValueError(f"{manifest}: expected path,label[,system] columns, found {names}")
    for row in rows:
        label = (row["label"] or "").strip().lower()
        if label not in LABELS:
            raise ValueError(f"{manifest}: unknown label {row['label']!r}")
        is_spoof = label in SPOOF_LABELS
        clips.append(
            Clip(
                path=data_dir / row["path"],
                label=int(is_spoof),
                system=(row.get("system") or ("spoof" if is_spoof else "bonafide")).strip(),
                speaker=(row.get("speaker") or row["path"]).strip(),
                corpus=(row.get("corpus") or "").strip(),
                origin=(row.get("origin") or "").strip(),
                key=f"{data_dir.resolve().name}/{row['path']}",
            )
        )
    return clips


def read_sets(data_dirs: Sequence[Path]) -> list[Clip]:
    """Clips of several manifests, in order; a missing manifest is an error."""
    out: list[Clip] = []
    for d in data_dirs:
        out.extend(read_manifest(d))
    return out


def pairs(clips: Sequence[Clip]) -> list[tuple[int, int]]:
    """(spoof index, bona fide source index) for every copy-synthesis pair in `clips`.

    Pairs come from `origin` (HiFi-GAN copy-synthesis) and, for WaveFake, from the LJSpeech
    utterance id both file names start with (`LJ040-0073_gen_…` is `LJ040-0073_…`).
    """
    by_path = {c.path.resolve(): i for i, c in enumerate(clips)}
    lj = {}
    for i, c in enumerate(clips):
        m = re.match(r"(LJ\d{3}-\d{4})_", c.path.name)
        if m and c.label == 0:
            lj[m.group(1)] = i
    out = []
    for i, c in enumerate(clips):
        if c.label != 1:
            continue
        src = c.pair_source
        if src is not None and src in by_path:
            out.append((i, by_path[src]))
            continue
        m = re.match(r"(LJ\d{3}-\d{4})_gen_", c.path.name)
        if m and m.group(1) in lj:
            out.append((i, lj[m.group(1)]))
    return out
