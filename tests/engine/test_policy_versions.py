"""A policy version is fixed by its first commit; later changes need a version bump."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from engine.policy.git import history, version_bump_problems
from tests.conftest import POLICIES


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(POLICIES / "conference-default", repo / "policies" / "conference-default")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    return repo / "policies"


def _set_version(folder: Path, version: str) -> None:
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    manifest["version"] = version
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def test_unchanged_policy_has_no_version_problem(tmp_path):
    assert version_bump_problems(_repo(tmp_path), "conference-default") == []


def test_uncommitted_change_without_a_bump_is_flagged(tmp_path):
    policies = _repo(tmp_path)
    folder = policies / "conference-default"
    (folder / "policy.yaml").write_text(
        (folder / "policy.yaml").read_text().replace("prior: 0.01", "prior: 0.02")
    )
    (problem,) = version_bump_problems(policies, "conference-default")
    assert "bump the version" in problem and "manifest.yaml" in problem


def test_committed_change_without_a_bump_is_flagged(tmp_path):
    policies = _repo(tmp_path)
    folder = policies / "conference-default"
    (folder / "tests.yaml").write_text((folder / "tests.yaml").read_text() + "\n")
    _git(policies.parent, "commit", "-qam", "edit")
    assert len(version_bump_problems(policies, "conference-default")) == 1


def test_a_bumped_version_clears_the_problem_and_starts_its_own_history(tmp_path):
    policies = _repo(tmp_path)
    folder = policies / "conference-default"
    first = yaml.safe_load((folder / "manifest.yaml").read_text())["version"]
    (folder / "tests.yaml").write_text((folder / "tests.yaml").read_text() + "\n")
    _set_version(folder, "9.0.0")
    assert version_bump_problems(policies, "conference-default") == []
    _git(policies.parent, "commit", "-qam", "bump")
    assert version_bump_problems(policies, "conference-default") == []
    assert [v.version for v in history(policies, "conference-default")] == ["9.0.0", first]
