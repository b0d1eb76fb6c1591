"""The evaluation manifest reader: what a careless export of it still reads, and what not."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.dataset import read_manifest


def test_a_manifest_with_a_bom_and_spaced_headers_is_read(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_bytes("\ufeffPath , LABEL,system\na.wav,spoof,X\n".encode())
    (clip,) = read_manifest(tmp_path)
    assert clip.path == tmp_path / "a.wav" and clip.label == 1 and clip.system == "X"


def test_a_manifest_without_a_label_column_names_the_columns_it_found(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,kind\na.wav,spoof\n")
    with pytest.raises(ValueError, match=r"expected path,label\[,system\] columns, found"):
        read_manifest(tmp_path)


def test_a_clip_gets_the_same_augmentation_seed_wherever_its_data_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detectors.training.featurize import clip_seed

    for where in ("here", "there/deeper"):
        d = tmp_path / where / "audio"
        d.mkdir(parents=True)
        (d / "manifest.csv").write_text("path,label\nlibri/a.wav,bonafide\n")
    monkeypatch.chdir(tmp_path / "there")
    (a,) = read_manifest(tmp_path / "here" / "audio")
    (b,) = read_manifest(Path("deeper/audio"))  # relative, as `--data` may name it
    assert a.path != b.path
    assert a.key == b.key == "audio/libri/a.wav"
    assert clip_seed(a) == clip_seed(b)
