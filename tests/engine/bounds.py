"""Hostile policy content shared by the bounds tests (issue 10, point 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import POLICIES

BOMB_PID = "support-password-reset"


def alias_bomb(levels: int = 25) -> str:
    """A ``when`` condition that is 3**levels leaves once its aliases are expanded (~4 KB)."""
    items = ["        - &a0 {identity.assurance: {lte: low}}"] + [
        f"        - &a{i} {{any: [*a{i - 1}, *a{i - 1}, *a{i - 1}]}}" for i in range(1, levels)
    ]
    return "    when:\n      any:\n" + "\n".join(items) + "\n"


def alias_bomb_policy(folder: Path) -> Path:
    """A copy of the bundled password-reset policy at ``folder`` whose first adjustment's
    condition is an alias bomb (its manifest, and so its fail_mode, intact)."""
    shutil.copytree(POLICIES / BOMB_PID, folder)
    path = folder / "policy.yaml"
    text = path.read_text()
    line = "    when: {identity.assurance: {lte: low}}\n"
    assert line in text
    path.write_text(text.replace(line, alias_bomb(), 1))
    return folder
