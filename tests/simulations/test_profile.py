"""A detector response profile runs the real detectors over labelled clips × conditions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from engine.cli.main import app
from simulations.corpus import read_corpus
from simulations.profile import ProfileError, load_profile, run_profile, select_clips

SR = 16_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Two short labelled clips made here: a voiced harmonic tone and a buzzy one."""
    d = tmp_path_factory.mktemp("audio")
    t = np.arange(int(2.5 * SR)) / SR
    rng = np.random.default_rng(0)
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
    voiced = 0.2 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(
        t.size
    )
    buzzy = 0.3 * np.sign(np.sin(2 * np.pi * 110 * t)) + 0.02 * rng.standard_normal(t.size)
    (d / "bonafide").mkdir()
    (d / "spoof").mkdir()
    sf.write(d / "bonafide" / "a.flac", voiced.astype(np.float32), SR)
    sf.write(d / "spoof" / "b.flac", buzzy.astype(np.float32), SR)
    (d / "manifest.csv").write_text(
        "path,label,system,speaker,corpus\n"
        "bonafide/a.flac,bonafide,LibriSpeech test,s1,tones\n"
        "spoof/b.flac,spoof,YourTTS zero-shot TTS,s2,tones\n"
    )
    return d


@pytest.fixture(scope="module")
def profile_file(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("profile") / "profile.parquet"
    run_profile(
        [data_dir], out, conditions=["clean", "mulaw_8k"], limit=2, max_seconds=2.5, progress=False
    )
    return out


def test_profile_has_a_row_per_clip_and_condition(profile_file):
    table, meta = load_profile(profile_file)
    pairs = {(r["clip"], r["condition"]) for r in table.select(["clip", "condition"]).to_pylist()}
    assert pairs == {
        (c, k) for c in ("bonafide/a.flac", "spoof/b.flac") for k in ("clean", "mulaw_8k")
    }
    assert meta["conditions"] == ["clean", "mulaw_8k"]


def _emitted(table) -> list[str]:
    return sorted(c.removesuffix(".score") for c in table.column_names if c.endswith(".score"))


def test_profile_scores_come_from_named_detector_versions(profile_file):
    table, _ = load_profile(profile_file)
    assert _emitted(table), "no detector emitted a signal"
    for name in _emitted(table):
        scores = table.column(f"{name}.score").to_numpy()
        assert np.all(np.isnan(scores) | ((scores >= 0) & (scores <= 1)))
        detectors = [d for d in table.column(f"{name}.detector").to_pylist() if d]
        assert all(d.startswith(name.split(".", 1)[1] + "@") for d in detectors)


def test_selection_covers_both_labels_first(data_dir):
    picked = select_clips([data_dir], 2)
    assert {c.label for _, c in picked} == {0, 1}


def test_unknown_condition_is_refused(data_dir, tmp_path):
    with pytest.raises(ProfileError, match="unknown condition 'tin_can'"):
        run_profile([data_dir], tmp_path / "p.parquet", conditions=["tin_can"], limit=1)


def test_generate_draws_audio_signals_from_the_profile(profile_file, tmp_path):
    out = tmp_path / "corpus.parquet"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "generate",
            "--sessions",
            "200",
            "--seed",
            "1",
            "--scenarios",
            "voice_clone,legit_customer",
            "--profile",
            str(profile_file),
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    table, meta = read_corpus(out)
    profiled, _ = load_profile(profile_file)
    drawn_from_profile = {"audio.synthetic_voice", "audio.replay", "audio.voice_consistency"}
    names = [n for n in _emitted(profiled) if n in drawn_from_profile]
    assert names, "the profile holds none of the scenarios' audio signals"
    for name in names:
        measured = set(profiled.column(f"{name}.score").to_pylist())
        drawn = {x for x in table.column(f"{name}.score").to_pylist() if x == x}
        assert drawn and drawn <= measured, name
    assert meta["profile"]["sha256"].startswith("sha256:")


def test_profile_states_auc_per_signal_and_condition(profile_file):
    table, meta = load_profile(profile_file)
    rows = {(x["signal"], x["condition"]): x for x in meta["limits"]}
    for name in _emitted(table):
        got = rows[(name, "mulaw_8k")]
        assert got["bonafide"] + got["spoof"] <= 2
        assert got["auc"] is None or 0.0 <= got["auc"] <= 1.0


def test_profile_records_each_detector_model_digest(profile_file):
    _, meta = load_profile(profile_file)
    assert meta["models"] and all("@" in ref for ref in meta["models"])
