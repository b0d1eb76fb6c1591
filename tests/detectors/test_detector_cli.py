"""`liveguard analyze` and `liveguard detectors ...` end to end (no stand-ins)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from detectors.audio_io import load_audio, shared_data_dir
from detectors.frontend import envelope
from engine.cli.main import app

from .helpers import SR, clip_path, manifest

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def wav(tmp_path: Path, system: str = "YourTTS zero-shot TTS", index: int = 0) -> Path:
    out = tmp_path / "call.wav"
    sf.write(out, load_audio(clip_path(system, index)), SR)
    return out


def test_analyze_streams_signals_and_prints_them(tmp_path: Path) -> None:
    res = runner.invoke(app, ["analyze", "--audio", str(wav(tmp_path))])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith("[    1.0s] audio.synthetic_voice") for line in lines)
    assert "final signals:" in lines


def test_analyze_json_with_policy_decides(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "analyze",
            "--audio",
            str(wav(tmp_path)),
            "--json",
            "--policy",
            "support-password-reset",
            "--policies",
            str(REPO / "policies"),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    names = {s["name"] for s in doc["signals"]}
    assert {"audio.quality", "audio.synthetic_voice", "audio.replay"} <= names
    assert len(doc["emissions"]) > len(doc["signals"])
    assert doc["decision"]["action"] in {"log", "warn", "step_up", "review", "block"}
    assert doc["decision"]["policy"]["id"] == "support-password-reset"


def test_analyze_with_mouth_series_emits_lipsync(tmp_path: Path) -> None:
    audio = wav(tmp_path, "LibriSpeech train", 5)
    env = envelope(load_audio(audio))
    series = tmp_path / "mouth.csv"
    with series.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t_ms", "mouth_openness"])
        for i in range(0, len(env), 4):  # 25 fps
            w.writerow([i * 10, float(np.mean(env[max(0, i - 4) : i + 4]))])
    res = runner.invoke(
        app, ["analyze", "--audio", str(audio), "--mouth-series", str(series), "--json"]
    )
    assert res.exit_code == 0, res.output
    lip = [s for s in json.loads(res.output)["signals"] if s["name"] == "av.lipsync"]
    assert lip and lip[0]["score"] < 0.5


def test_analyze_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    silent = tmp_path / "short.wav"
    sf.write(silent, np.zeros(100, np.float32), SR)
    for path, msg in (
        (empty, "is empty"),
        (junk, "cannot read audio"),
        (tmp_path / "nope.wav", "no such file"),
        (silent, "shorter than"),
    ):
        res = runner.invoke(app, ["analyze", "--audio", str(path)])
        assert res.exit_code == 2, (path, res.output)
        assert msg in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1
    bad_csv = tmp_path / "m.csv"
    bad_csv.write_text("foo,bar\n1,2\n")
    res = runner.invoke(
        app, ["analyze", "--audio", str(wav(tmp_path)), "--mouth-series", str(bad_csv)]
    )
    assert res.exit_code == 2 and "no time column" in res.output


def test_detectors_list_shows_built_ins() -> None:
    res = runner.invoke(app, ["detectors", "list"])
    assert res.exit_code == 0
    assert "audio.synthetic_voice" in res.output and "av.lipsync" in res.output


def test_detectors_evaluate_on_a_small_set(tmp_path: Path) -> None:
    rows = manifest()
    bona = [r for r in rows if r["label"] == "bonafide"][::60][:8]
    spoof = [r for r in rows if r["label"] == "spoof"][::30][:8]
    data = tmp_path / "set"
    data.mkdir()
    with (data / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "system", "speaker"])
        for r in bona + spoof:
            w.writerow(
                [
                    str(shared_data_dir() / "audio" / r["path"]),
                    r["label"],
                    r["system"],
                    r["speaker"],
                ]
            )
    res = runner.invoke(
        app,
        [
            "detectors",
            "evaluate",
            "--data",
            str(data),
            "--json",
            "--no-loso",
            "--no-cv",
            "--no-corpus-out",
            "--conditions",
            "clean,mulaw_8k",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    overall = rep["shipped"]["clean"]["overall"]
    assert overall["n_bonafide"] == 8 and overall["n_spoof"] == 8
    assert 0.0 <= overall["eer"] <= 1.0 and 0.0 <= overall["auc"] <= 1.0
    assert set(rep["shipped"]) == {"clean", "mulaw_8k"}
    assert rep["leave_one_system_out"] == {}

    res = runner.invoke(app, ["detectors", "evaluate", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "manifest.csv not found" in res.output


def test_analyze_two_party_stereo_emits_turn_taking(tmp_path: Path) -> None:
    from .test_detector_behavior import conversation

    parts = conversation([700] * 7)
    stereo = np.stack([parts["agent"], parts["remote"]], axis=1)
    path = tmp_path / "call.flac"
    sf.write(path, stereo, SR)
    res = runner.invoke(app, ["analyze", "--audio", str(path), "--two-party", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    turn = [s for s in doc["signals"] if s["name"] == "behavior.turn_taking"]
    assert turn and turn[0]["score"] > 0.5
    assert {e["party"] for e in doc["emissions"]} == {"remote"}  # agent audio is not judged
    mono = tmp_path / "mono.wav"
    sf.write(mono, parts["remote"], SR)
    res = runner.invoke(app, ["analyze", "--audio", str(mono), "--two-party"])
    assert res.exit_code == 2 and "needs a stereo file" in res.output


def manifest_of(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    out = tmp_path / "batch.csv"
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "system"])
        for path, label in rows:
            w.writerow([path, label, "x"])
    return out


def test_analyze_manifest_prints_one_decided_json_line_per_file(tmp_path: Path) -> None:
    sf.write(tmp_path / "real.wav", load_audio(clip_path("LibriSpeech train", 0)), SR)
    sf.write(tmp_path / "fake.wav", load_audio(clip_path("YourTTS zero-shot TTS", 0)), SR)
    m = manifest_of(tmp_path, [("real.wav", "bonafide"), ("fake.wav", "spoof")])
    policy = ["--policy", "support-password-reset", "--policies", str(REPO / "policies")]
    res = runner.invoke(app, ["analyze", "--manifest", str(m), "--jsonl", *policy])
    assert res.exit_code == 0, res.output
    docs = [json.loads(line) for line in res.output.splitlines()]
    assert [Path(d["path"]).name for d in docs] == ["real.wav", "fake.wav"]
    for d in docs:
        assert "audio.synthetic_voice" in {s["name"] for s in d["signals"]}
        assert d["decision"]["policy"]["id"] == "support-password-reset"
    real = docs[0]
    # The real caller is decided on the first pass alone; no second pass is asked for.
    assert real["second_pass"] is None and real["first_pass_action"] is None
    assert not [o for o in real["decision"]["obligations"] if o["kind"] == "second_pass"]


def test_analyze_manifest_runs_the_second_pass_a_decision_asks_for(tmp_path: Path) -> None:
    sf.write(tmp_path / "fake.wav", load_audio(clip_path("YourTTS zero-shot TTS", 0)), SR)
    m = manifest_of(tmp_path, [("fake.wav", "spoof")])
    policy = ["--policy", "support-password-reset", "--policies", str(REPO / "policies")]
    res = runner.invoke(app, ["analyze", "--manifest", str(m), "--jsonl", *policy])
    assert res.exit_code == 0, res.output
    [doc] = [json.loads(line) for line in res.output.splitlines()]
    # The first pass stepped the clone up with a second_pass obligation; the listed stage-2
    # detector ran on the file and the decision was made again with its signal.
    assert doc["first_pass_action"] == "step_up"
    assert [s["name"] for s in doc["second_pass"]] == ["audio.synthetic_voice_deep"]
    assert "audio.synthetic_voice_deep" not in {s["name"] for s in doc["signals"]}
    used = {c["signal"] for c in doc["decision"]["fused"]["contributions"]}
    assert "audio.synthetic_voice_deep" in used


def test_analyze_manifest_matches_single_file_analysis(tmp_path: Path) -> None:
    from detectors.analyze import AnalysisInput, analyze_files, latest_signals, stream_file

    paths = [clip_path("LibriSpeech train", i) for i in range(3)]
    batch = list(analyze_files([(p, {}) for p in paths], concurrency=3))
    for p, res in zip(paths, batch, strict=True):
        alone = latest_signals(stream_file(AnalysisInput(audio=p)))
        want = {s.name: round(s.score, 6) for s in alone}
        assert {s.name: round(s.score, 6) for s in res.signals} == want


def test_analyze_manifest_names_a_detector_that_failed_on_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import detectors.analyze as analyze
    from detectors.quality import AudioQualityDetector
    from detectors.synthetic_voice import SyntheticVoiceDetector

    class Misshipped(SyntheticVoiceDetector):
        """The screener's code with the second pass's model file (408 inputs, not 216): the
        mismatch a careless deployment makes, failing in onnxruntime on every window."""

        model_files = {"fp32": "synthetic_voice_deep.onnx", "int8": "synthetic_voice_deep.onnx"}

    monkeypatch.setattr(analyze, "discover", lambda *a, **k: [AudioQualityDetector(), Misshipped()])
    [res] = analyze.analyze_files([(clip_path("LibriSpeech train", 0), {})])
    assert res.failed_detectors == ("audio.synthetic_voice",)
    assert [s.name for s in res.signals] == ["audio.quality"]
    assert res.error is None


def test_analyze_manifest_reports_an_unreadable_file_and_goes_on(tmp_path: Path) -> None:
    sf.write(tmp_path / "real.wav", load_audio(clip_path("LibriSpeech train", 0)), SR)
    m = manifest_of(tmp_path, [("missing.wav", "bonafide"), ("real.wav", "bonafide")])
    res = runner.invoke(app, ["analyze", "--manifest", str(m), "--jsonl"])
    assert res.exit_code == 0, res.output
    missing, real = (json.loads(line) for line in res.output.splitlines())
    assert "no such file" in missing["error"] and missing["signals"] == []
    assert real["error"] is None and real["signals"]
    assert real["failed_detectors"] == []


def test_analyze_manifest_saved_by_a_spreadsheet_with_a_bom_is_read(tmp_path: Path) -> None:
    sf.write(tmp_path / "real.wav", load_audio(clip_path("LibriSpeech train", 0)), SR)
    m = tmp_path / "calls.csv"
    m.write_bytes("\ufeffPath, Label\nreal.wav,bonafide\n".encode())
    res = runner.invoke(app, ["analyze", "--manifest", str(m), "--jsonl"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)
    assert row["error"] is None and row["signals"] and row["label"] == "bonafide"


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        (b"", "is empty"),
        (b"path,label\n", "lists no files"),
        (b"path,label\n\xff\xfe.wav,bonafide\n", "is not UTF-8 text"),
        (b"file,label\nx.wav,bonafide\n", "has no 'path' column"),
        (b"path,label\nx.wav,bonafide\ny.wav,bona fide\n", "line 3: label 'bona fide'"),
    ],
)
def test_analyze_manifest_that_lists_nothing_readable_exits_2(
    tmp_path: Path, content: bytes, msg: str
) -> None:
    m = tmp_path / "calls.csv"
    m.write_bytes(content)
    res = runner.invoke(app, ["analyze", "--manifest", str(m), "--jsonl"])
    assert res.exit_code == 2, res.output
    assert msg in res.output and "Traceback" not in res.output
