"""The training environment against constraints.txt (detectors.training.environment)."""

from __future__ import annotations

from pathlib import Path

from detectors.training import environment

NUMERIC_STACK = ("numpy", "scipy", "librosa", "soxr", "onnxruntime", "onnx", "pyrnnoise")


def test_the_lock_pins_the_numeric_stack_ffmpeg_and_numpy_simd() -> None:
    lock = environment.read_lock()
    assert all(lock.pins.get(name) for name in NUMERIC_STACK), sorted(lock.pins)
    assert lock.ffmpeg and lock.numpy_simd


def test_this_environment_has_every_package_the_lock_pins() -> None:
    # make setup installs with -c constraints.txt; ffmpeg is Debian's and may move with a
    # security update, so only pip's side is held here.
    lock = environment.read_lock().model_copy(update={"ffmpeg": None, "numpy_simd": None})
    assert environment.compare(lock, environment.installed_distributions()) == []


def test_a_package_at_another_version_is_named_with_the_locked_one() -> None:
    lock = environment.Lock(pins={"numpy": "2.4.6"})
    assert environment.compare(lock, {"numpy": "2.5.0"}) == ["numpy 2.5.0 (locked 2.4.6)"]


def test_a_missing_package_and_another_ffmpeg_are_named() -> None:
    lock = environment.Lock(pins={"soxr": "1.1.0"}, ffmpeg="5.1.9-0+deb12u1")
    diffs = environment.compare(lock, {}, ffmpeg="6.0")
    assert diffs == ["soxr not installed (locked 1.1.0)", "ffmpeg 6.0 (locked 5.1.9-0+deb12u1)"]


def test_a_cpu_where_numpy_dispatches_elsewhere_is_named() -> None:
    lock = environment.Lock(pins={}, numpy_simd=["X86_V3", "X86_V4"])
    assert environment.compare(lock, {}, simd=["X86_V3", "X86_V4"]) == []
    (diff,) = environment.compare(lock, {}, simd=["X86_V3"])
    assert diff.startswith("numpy dispatches to X86_V3 on this CPU")


def test_numpy_simd_reads_what_numpy_found() -> None:
    simd = environment.numpy_simd()
    assert isinstance(simd, list) and all(isinstance(s, str) for s in simd)


def test_distribution_names_compare_normalized(tmp_path: Path) -> None:
    lock = tmp_path / "constraints.txt"
    lock.write_text("# header\n# ffmpeg==5.1.9\n# numpy-simd==X86_V3,X86_V4\nML_Dtypes==0.7.0\n")
    read = environment.read_lock(lock)
    assert read.pins == {"ml-dtypes": "0.7.0"} and read.ffmpeg == "5.1.9"
    assert read.numpy_simd == ["X86_V3", "X86_V4"]
    installed = {"ml-dtypes": "0.7.0"}
    assert environment.compare(read, installed, "5.1.9", ["X86_V3", "X86_V4"]) == []


def test_a_missing_lock_file_is_one_difference(tmp_path: Path) -> None:
    env = environment.check(tmp_path / "constraints.txt")
    assert not env.matches_lock
    assert env.differences == [f"no lock file at {tmp_path / 'constraints.txt'}"]


def test_no_ffmpeg_is_a_difference_when_the_lock_names_one() -> None:
    lock = environment.Lock(pins={}, ffmpeg="5.1.9-0+deb12u1")
    assert environment.compare(lock, {}, ffmpeg=None) == [
        "ffmpeg not found (locked 5.1.9-0+deb12u1)"
    ]


def test_training_without_the_shared_data_exits_with_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "LIVEGUARD_SHARED_DATA": str(tmp_path / "nowhere")}
    out = subprocess.run(
        [sys.executable, "-m", "detectors.training.train_synthetic_voice", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and "LIVEGUARD_SHARED_DATA" in lines[0], out.stderr
    assert not list(tmp_path.glob("*.onnx"))
