"""The training environment against constraints.txt (detectors.training.environment)."""

from __future__ import annotations

from pathlib import Path

from detectors.training import environment

NUMERIC_STACK = ("numpy", "scipy", "librosa", "soxr", "onnxruntime", "onnx", "pyrnnoise")


def test_the_lock_pins_the_numeric_stack_and_ffmpeg_exactly() -> None:
    pins, ffmpeg = environment.read_lock()
    assert all(pins.get(name) for name in NUMERIC_STACK), sorted(pins)
    assert ffmpeg


def test_this_environment_has_every_package_the_lock_pins() -> None:
    # make setup installs with -c constraints.txt; ffmpeg is Debian's and may move with a
    # security update, so only pip's side is held here.
    pins, _ = environment.read_lock()
    diffs = environment.compare(pins, None, environment.installed_distributions(), None)
    assert diffs == []


def test_a_package_at_another_version_is_named_with_the_locked_one() -> None:
    diffs = environment.compare({"numpy": "2.4.6"}, None, {"numpy": "2.5.0"}, None)
    assert diffs == ["numpy 2.5.0 (locked 2.4.6)"]


def test_a_missing_package_and_another_ffmpeg_are_named() -> None:
    diffs = environment.compare({"soxr": "1.1.0"}, "5.1.9-0+deb12u1", {}, "6.0")
    assert diffs == ["soxr not installed (locked 1.1.0)", "ffmpeg 6.0 (locked 5.1.9-0+deb12u1)"]


def test_distribution_names_compare_normalized(tmp_path: Path) -> None:
    lock = tmp_path / "constraints.txt"
    lock.write_text("# header\n# ffmpeg==5.1.9\nML_Dtypes==0.7.0\n")
    pins, ffmpeg = environment.read_lock(lock)
    assert pins == {"ml-dtypes": "0.7.0"} and ffmpeg == "5.1.9"
    assert environment.compare(pins, None, {"ml-dtypes": "0.7.0"}, None) == []


def test_a_missing_lock_file_is_one_difference(tmp_path: Path) -> None:
    env = environment.check(tmp_path / "constraints.txt")
    assert not env.matches_lock
    assert env.differences == [f"no lock file at {tmp_path / 'constraints.txt'}"]
