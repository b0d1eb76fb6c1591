"""Bounded policy files: alias bombs, depth, size caps and symlinks (issue 10, points 4 and 10).

The CLI tests run the real ``liveguard`` in a subprocess with a timeout: on unbounded code
an alias bomb does not fail, it hangs (and eats memory), so only a timeout can catch it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.core.errors import PolicyInvalid
from engine.policy.loader import load_policy_folder
from engine.policy.repository import PolicyRepository
from governance.files import LIMITS, FileRefused, load_json, load_yaml
from governance.folder import folder_digest
from governance.loading import load_governance
from tests.conftest import ROOT, request_dict
from tests.engine.bounds import BOMB_PID as PID
from tests.engine.bounds import alias_bomb, alias_bomb_policy

#: Generous: each command answers in well under a second once bounded; the rest is startup.
CLI_TIMEOUT_S = 30


def bomb_policy(tmp_path: Path) -> Path:
    return alias_bomb_policy(tmp_path / "policies" / PID)


# --- the loader ------------------------------------------------------------------------------


def test_alias_bomb_is_refused_quickly_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text("root:\n  any:\n" + alias_bomb().replace("    when:\n      any:\n", ""))
    started = time.monotonic()
    with pytest.raises(FileRefused) as exc:
        load_yaml(path)
    assert time.monotonic() - started < 1.0
    assert exc.value.kind == "bounds"
    assert str(exc.value).startswith(f"{path}: YAML expands to more than {LIMITS.max_nodes:,}")


def test_aliases_within_the_bounds_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\nlist: [*b, *b]\n")
    assert load_yaml(path) == {
        "base": {"x": 1},
        "other": {"x": 1, "y": 2},
        "list": [{"x": 1}, {"x": 1}],
    }


def test_deep_nesting_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * (LIMITS.max_depth + 1) + "]" * (LIMITS.max_depth + 1))
    with pytest.raises(FileRefused, match=f"deeper than {LIMITS.max_depth} levels"):
        load_yaml(path)


def test_depth_reached_through_an_alias_is_refused(tmp_path: Path) -> None:
    half = LIMITS.max_depth // 2 + 2
    path = tmp_path / "deep-alias.yaml"
    path.write_text(f"a: &x {'[' * half}{']' * half}\nb: {'[' * half}*x{']' * half}\n")
    with pytest.raises(FileRefused, match="deeper than"):
        load_yaml(path)


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text("a: &x [1, *x]\n")
    with pytest.raises(FileRefused, match="refers to the node that contains it"):
        load_yaml(path)


def test_oversized_yaml_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    with path.open("wb") as fh:  # 50 MB, sparse: the cap must hold before any read
        fh.truncate(50 * 1024 * 1024)
    started = time.monotonic()
    with pytest.raises(FileRefused) as exc:
        load_yaml(path)
    assert time.monotonic() - started < 1.0
    assert exc.value.kind == "too_large"
    assert str(exc.value).startswith(f"{path}: is 50.0 MiB")
    assert f"{LIMITS.max_bytes:,} bytes" in str(exc.value)


def test_yaml_read_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("secret: 1\n")
    link = tmp_path / "pia.yaml"
    link.symlink_to(outside)
    with pytest.raises(FileRefused, match="is a symbolic link"):
        load_yaml(link)


def test_deep_json_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("[" * (LIMITS.max_depth + 1) + "]" * (LIMITS.max_depth + 1))
    with pytest.raises(FileRefused, match=f"JSON nests deeper than {LIMITS.max_depth}"):
        load_json(path)


def test_json_with_too_many_nodes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"x": [0] * (LIMITS.max_nodes + 1)}))
    with pytest.raises(FileRefused, match=f"more than {LIMITS.max_nodes:,} nodes"):
        load_json(path)


# --- policy folders --------------------------------------------------------------------------


def test_alias_bomb_in_policy_yaml_makes_the_policy_invalid(tmp_path: Path) -> None:
    folder = bomb_policy(tmp_path)
    with pytest.raises(PolicyInvalid) as exc:
        load_policy_folder(folder)
    assert any(
        p.startswith(f"{folder / 'policy.yaml'}: YAML expands to more than")
        for p in exc.value.problems
    )


def test_fifty_megabyte_policy_yaml_is_refused_fast(policy_copy) -> None:
    folder = policy_copy(PID)
    with (folder / "policy.yaml").open("ab") as fh:
        fh.write(b"# padding\n" * (5 * 1024 * 1024))
    started = time.monotonic()
    with pytest.raises(PolicyInvalid) as exc:
        load_policy_folder(folder)
    assert time.monotonic() - started < 2.0
    assert any(
        p.startswith(f"{folder / 'policy.yaml'}: is ") and f"{LIMITS.max_bytes:,} bytes" in p
        for p in exc.value.problems
    )


def test_symlink_out_of_the_policy_folder_is_refused(policy_copy, tmp_path: Path) -> None:
    folder = policy_copy(PID)
    outside = tmp_path / "elsewhere-pia.yaml"
    (folder / "pia.yaml").rename(outside)
    (folder / "pia.yaml").symlink_to(outside)
    with pytest.raises(PolicyInvalid) as exc:
        load_policy_folder(folder)
    assert any(
        p.startswith(f"{folder / 'pia.yaml'}: is a symbolic link") for p in exc.value.problems
    )


def test_symlink_inside_the_policy_folder_is_refused_too(policy_copy) -> None:
    folder = policy_copy(PID)
    (folder / "notes.yaml").symlink_to(folder / "tests.yaml")
    with pytest.raises(PolicyInvalid, match="does not load") as exc:
        load_policy_folder(folder)
    assert any("notes.yaml: is a symbolic link" in p for p in exc.value.problems)


def test_governance_does_not_read_pia_through_a_symlink(policy_copy, tmp_path: Path) -> None:
    folder = policy_copy(PID)
    outside = tmp_path / "elsewhere-pia.yaml"
    (folder / "pia.yaml").rename(outside)
    (folder / "pia.yaml").symlink_to(outside)
    pia, _, problems = load_governance(folder)
    assert pia is None
    assert any("is a symbolic link" in p.message for p in problems)


def test_digest_covers_the_link_not_what_it_points_at(policy_copy, tmp_path: Path) -> None:
    folder = policy_copy(PID)
    outside = tmp_path / "target.txt"
    outside.write_text("one")
    (folder / "extra.txt").symlink_to(outside)
    before = folder_digest(folder)
    outside.write_text("two")
    assert folder_digest(folder) == before


def test_repository_does_not_reparse_a_policy_that_failed(tmp_path: Path) -> None:
    folder = bomb_policy(tmp_path)
    repo = PolicyRepository(folder.parent)
    assert set(repo.preload()) == {PID}
    (folder / "policy.yaml").unlink()  # a second parse would report a missing file
    with pytest.raises(PolicyInvalid) as exc:
        repo.get(PID)
    assert any("YAML expands" in p for p in exc.value.problems)


# --- every command that reads policies --------------------------------------------------------


def _liveguard(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.parametrize(
    "command", [["policy", "lint"], ["policy", "test"], ["governance", "check"]]
)
def test_policy_commands_answer_an_alias_bomb_with_a_clear_error(tmp_path: Path, command) -> None:
    folder = bomb_policy(tmp_path)
    done = _liveguard(*command, PID, "--policies", str(folder.parent))
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"{folder / 'policy.yaml'}: YAML expands to more than" in out


def test_decide_answers_an_alias_bomb_with_a_clear_error(tmp_path: Path) -> None:
    folder = bomb_policy(tmp_path)
    done = _liveguard(
        "decide",
        "--policy",
        PID,
        "--policies",
        str(folder.parent),
        stdin=json.dumps(request_dict()),
    )
    assert done.returncode == 2
    assert f"{folder / 'policy.yaml'}: YAML expands to more than" in done.stderr
