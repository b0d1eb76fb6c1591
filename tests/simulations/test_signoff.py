"""Board sign-offs bind one digest: signed with a keyring key, any edit or move breaks them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.signoff import (
    SIGNOFF_DIR,
    SignOffError,
    generate_key,
    load_private_key,
    record_path,
    sign_off,
    unsigned,
    verify_signoff,
)

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture
def board(tmp_path: Path) -> tuple[Path, Path]:
    """A policy root with a one-member keyring, the member's key file and a report."""
    pem, public = generate_key()
    key_file = tmp_path / "dana.pem"
    key_file.write_bytes(pem)
    ring = tmp_path / "policies" / SIGNOFF_DIR / "keyring.yaml"
    ring.parent.mkdir(parents=True)
    ring.write_text(
        yaml.safe_dump({"keys": [{"id": "dana", "name": "Dana", "public_key": public}]})
    )
    (tmp_path / "report.md").write_text("# board packet\n")
    return tmp_path / "policies", key_file


def _sign(root: Path, key_file: Path, digest: str = DIGEST) -> Path:
    return sign_off(
        root,
        policy_id="payout-authorization",
        version="1.2.0",
        digest=digest,
        by="Dana Whitfield",
        key=load_private_key(key_file),
        report=root.parent / "report.md",
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_signed_digest_verifies(board):
    root, key = board
    _sign(root, key)
    status = verify_signoff(root, "payout-authorization", DIGEST)
    assert status.valid, status.problems
    assert status.record is not None and status.record.by == "Dana Whitfield"


def test_unsigned_digest_is_not_valid(board):
    root, key = board
    _sign(root, key)
    status = verify_signoff(root, "payout-authorization", OTHER)
    assert not status.valid
    assert "no sign-off record" in status.problems[0]


def test_edited_record_fails_verification(board):
    root, key = board
    path = _sign(root, key)
    path.write_text(path.read_text().replace("Dana Whitfield", "Mallory"))
    status = verify_signoff(root, "payout-authorization", DIGEST)
    assert not status.valid
    assert "signature does not verify" in status.problems[0]


def test_record_moved_to_another_digest_fails(board):
    root, key = board
    path = _sign(root, key)
    moved = record_path(root, "payout-authorization", OTHER)
    moved.write_text(path.read_text())
    status = verify_signoff(root, "payout-authorization", OTHER)
    assert not status.valid
    assert "may not be moved" in status.problems[0]


def test_key_outside_the_keyring_cannot_sign(board, tmp_path):
    root, _ = board
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(generate_key()[0])
    with pytest.raises(SignOffError, match="not in the board's keyring"):
        _sign(root, stranger)


def test_record_signed_by_removed_key_fails(board):
    root, key = board
    _sign(root, key)
    ring = root / SIGNOFF_DIR / "keyring.yaml"
    other = Ed25519PrivateKey.generate()
    from governance.signoff import public_key_text

    ring.write_text(
        yaml.safe_dump(
            {"keys": [{"id": "dana", "name": "Dana", "public_key": public_key_text(other)}]}
        )
    )
    assert not verify_signoff(root, "payout-authorization", DIGEST).valid


def test_a_signed_digest_is_never_signed_over(board):
    root, key = board
    _sign(root, key)
    with pytest.raises(SignOffError, match="already signed off"):
        _sign(root, key)


def test_unsigned_lists_only_live_versions_without_sign_off(board):
    root, key = board
    _sign(root, key)
    missing = unsigned(root, [("payout-authorization", DIGEST), ("conference-default", OTHER)])
    assert [(s.policy, s.digest) for s in missing] == [("conference-default", OTHER)]


def test_signoff_folder_is_not_a_policy():
    from engine import PolicyRepository
    from governance.signoff import load_keyring

    from .conftest import POLICIES

    assert SIGNOFF_DIR not in PolicyRepository(POLICIES).ids()
    assert load_keyring(POLICIES).keys is not None


def test_cli_sign_off_then_sign_offs_reports_it_valid(board, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from engine import PolicyRepository
    from engine.cli.main import app

    from .conftest import POLICIES

    root, key = board
    shutil.copytree(POLICIES / "conference-default", root / "conference-default")
    digest = PolicyRepository(root).get("conference-default").digest
    runner = CliRunner()
    before = runner.invoke(app, ["governance", "sign-offs", "--policies", str(root)])
    assert before.exit_code == 1 and "1 without a valid sign-off" in before.output
    signed = runner.invoke(
        app,
        [
            "governance",
            "sign-off",
            "conference-default",
            "--digest",
            digest,
            "--by",
            "Dana",
            "--report",
            str(root.parent / "report.md"),
            "--key",
            str(key),
            "--policies",
            str(root),
        ],
    )
    assert signed.exit_code == 0, signed.output
    after = runner.invoke(app, ["governance", "sign-offs", "--policies", str(root)])
    assert after.exit_code == 0 and "0 without a valid sign-off" in after.output
    # The record lies outside the policy folder: signing did not change the digest.
    assert PolicyRepository(root).get("conference-default").digest == digest


def test_serving_an_unsigned_digest_is_refused_without_override(board):
    from governance.signoff import check_serving

    root, key = board
    _sign(root, key)
    check = check_serving(root, [("payout-authorization", DIGEST), ("conference-default", OTHER)])
    assert not check.allowed and check.health()["signoff"] == "enforced"
    assert any("conference-default" in p for p in check.problems())


def test_override_serves_unsigned_and_says_so_on_health(board):
    from governance.signoff import check_serving

    root, _ = board
    check = check_serving(root, [("conference-default", OTHER)], allow_unsigned=True)
    assert check.allowed and check.health() == {
        "signoff": "override",
        "unsigned": [f"conference-default {OTHER}"],
    }
