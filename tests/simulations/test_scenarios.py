"""The scenario catalog loads, covers the red-team list, and refuses bad files by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simulations.scenarios import CATALOG_DIR, ScenarioError, load_catalog, load_scenario

RED_TEAM = {
    "voice_clone",
    "replay_attack",
    "mixed_mode",
    "screen_recorded_video",
    "low_quality_camera",
    "noisy_office",
    "echo",
    "poor_lighting",
    "accent_language",
    "legit_executive",
    "legit_employee",
    "legit_customer",
}


def test_catalog_holds_the_red_team_list(catalog):
    assert {s.id for s in catalog} == RED_TEAM


def test_catalog_shares_add_up_to_one(catalog):
    assert sum(s.share for s in catalog) == pytest.approx(1.0)


def test_every_attack_scenario_names_its_attack_type(catalog):
    assert all(s.attack_type for s in catalog if s.is_attack)


def test_non_profile_signals_are_marked_hand_set(catalog):
    for s in catalog:
        for name, spec in s.signals.items():
            assert spec.from_profile or spec.hand_set, (s.id, name)


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios"
    shutil.copytree(CATALOG_DIR, folder)
    return folder


def test_unknown_field_is_named_with_its_file(tmp_path):
    folder = _copy(tmp_path)
    f = folder / "echo.yaml"
    f.write_text(f.read_text().replace("share: 0.04", "share: 0.04\nweight: 3"))
    with pytest.raises(ScenarioError) as exc:
        load_catalog(folder)
    assert any(str(f) in p and "weight" in p for p in exc.value.problems)


def test_signal_without_source_is_refused(tmp_path):
    folder = _copy(tmp_path)
    f = folder / "poor_lighting.yaml"
    f.write_text(
        f.read_text().replace("    hand_set: true\n    present: 0.6\n", "    present: 0.6\n", 1)
    )
    with pytest.raises(ScenarioError) as exc:
        load_scenario(f)
    assert any("signals.av.lipsync" in p and "hand_set" in p for p in exc.value.problems)


def test_shares_not_adding_up_are_refused(tmp_path):
    folder = _copy(tmp_path)
    f = folder / "echo.yaml"
    f.write_text(f.read_text().replace("share: 0.04", "share: 0.05"))
    with pytest.raises(ScenarioError, match="add up to 1"):
        load_catalog(folder)


def test_unknown_scenario_selection_is_refused():
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        load_catalog(only=["nope"])
