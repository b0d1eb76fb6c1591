"""History exported from a real store replays under a candidate version, with outcomes."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
from typer.testing import CliRunner

from engine import PolicyRepository
from engine.cli.main import app
from simulations.replay import read_history, replay

from .conftest import POLICIES, POLICY


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        path = f"{prefix}{k}"
        out += _leaves(v, path + ".") if isinstance(v, dict) else [path]
    return out


def test_export_keeps_only_retained_input(history):
    path, _ = history
    for row in pq.read_table(path).to_pylist():
        kept = json.loads(row["retention"])
        for leaf in _leaves(json.loads(row["input"])):
            assert any(leaf == k or leaf.startswith(k + ".") for k in kept), leaf


def test_export_carries_review_outcomes(history):
    path, reviewed = history
    rows = {r["decision_id"]: r for r in pq.read_table(path).to_pylist()}
    assert rows[reviewed]["review_outcome"] == "legitimate"


def test_replay_under_the_same_version_is_unchanged(history):
    path, _ = history
    result = replay(
        read_history(path), PolicyRepository(POLICIES).get(POLICY), slower_than_us=10**9
    )
    assert result["classification"]["unchanged"] == result["decisions"] > 0


def test_replay_under_a_stricter_version_reports_changes_with_reasons(history, tmp_path):
    path, _ = history
    root = tmp_path / "policies"
    shutil.copytree(POLICIES / POLICY, root / POLICY)
    f = root / POLICY / "policy.yaml"
    f.write_text(f.read_text().replace("warn: 0.08", "warn: 0.01"))
    result = replay(read_history(path), PolicyRepository(root).get(POLICY), slower_than_us=10**9)
    assert result["classification"]["changed"] > 0
    example = result["examples"]["changed"][0]
    assert "old_reasons" in example["detail"] and "new_reasons" in example["detail"]


def test_outcomes_analysis_counts_the_overturned_review(history):
    path, _ = history
    result = replay(read_history(path), PolicyRepository(POLICIES).get(POLICY))
    versions = result["outcomes"]["by_version"]
    assert sum(v["labelled"] for v in versions.values()) == 1
    assert next(iter(versions.values()))["overturn_rate"] == 1.0


def test_store_export_command_writes_history(history, tmp_path):
    path, _ = history
    url = f"sqlite:///{path.parent / 'log.db'}"
    out = tmp_path / "again.parquet"
    res = CliRunner().invoke(
        app,
        [
            "store",
            "export",
            "--since",
            "2000-01-01T00:00:00Z",
            "-o",
            str(out),
            "--database-url",
            url,
        ],
    )
    assert res.exit_code == 0, res.output
    assert pq.read_table(out).num_rows == pq.read_table(path).num_rows
