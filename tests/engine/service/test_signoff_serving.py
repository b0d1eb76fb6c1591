"""``serve`` serves only versions the governance board signed off, unless started with the
explicit override, which is logged and shown on /health (issue 14, point 9)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.policy.repository import PolicyRepository
from engine.service.runtime import Runtime, SignOffMissing
from governance.signoff import generate_key, sign_off
from tests.engine.service.conftest import PID, POLICIES, ROOT, make_keys, make_settings


def _repo_with(tmp_path: Path, *, signed: bool) -> Path:
    """One bundled policy in a repository of its own, with a board of one."""
    root = tmp_path / "policies"
    shutil.copytree(POLICIES / PID, root / PID)
    pem, public = generate_key()
    (root / "_signoffs").mkdir()
    (root / "_signoffs" / "keyring.yaml").write_text(
        yaml.safe_dump({"keys": [{"id": "dana", "name": "Dana W", "public_key": public}]})
    )
    if signed:
        policy = PolicyRepository(root).get(PID)
        report = tmp_path / "report.md"
        report.write_text("# board packet\n")
        sign_off(
            root,
            policy_id=PID,
            version=policy.manifest.version,
            digest=policy.digest,
            by="Dana W",
            key=serialization.load_pem_private_key(pem, password=None),  # type: ignore[arg-type]
            report=report,
        )
    return root


def test_serve_refuses_unsigned_policy_versions(sqlite_url: str) -> None:
    make_keys(sqlite_url, "decide")
    out = subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", "serve", "--port", "1",
         "--database-url", sqlite_url],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "LIVEGUARD_POLICIES": str(POLICIES)},
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "without a board sign-off" in out.stderr and PID in out.stderr


def test_runtime_refuses_unsigned_versions_without_the_override(sqlite_url: str) -> None:
    rt = Runtime(make_settings(sqlite_url, allow_unsigned=False))
    with pytest.raises(SignOffMissing) as exc:
        rt.start()
    rt.db.dispose()
    assert any(PID in p for p in exc.value.problems)


def test_signed_off_versions_serve_without_the_override(tmp_path: Path, sqlite_url: str) -> None:
    root = _repo_with(tmp_path, signed=True)
    app = create_app(
        make_settings(sqlite_url, policies=root, allow_unsigned=False), periodic_purge=False
    )
    with TestClient(app) as c:
        health = c.get("/health").json()
    assert health["signoff"] == {"signoff": "enforced", "unsigned": []}


def test_an_edited_policy_loses_its_sign_off(tmp_path: Path, sqlite_url: str) -> None:
    root = _repo_with(tmp_path, signed=True)
    manifest = root / PID / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("owner:", "# edited\nowner:", 1))
    rt = Runtime(make_settings(sqlite_url, policies=root, allow_unsigned=False))
    with pytest.raises(SignOffMissing):
        rt.start()
    rt.db.dispose()


def test_the_override_is_shown_on_health(tmp_path: Path, sqlite_url: str) -> None:
    root = _repo_with(tmp_path, signed=False)
    app = create_app(
        make_settings(sqlite_url, policies=root, allow_unsigned=True), periodic_purge=False
    )
    with TestClient(app) as c:
        health = c.get("/health").json()
    assert health["signoff"]["signoff"] == "override"
    assert [u.split()[0] for u in health["signoff"]["unsigned"]] == [PID]
