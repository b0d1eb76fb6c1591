"""OPA bundles (build, sign, verify; OPA loads them) and policy versions from Git."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from engine.backends.bundle import read_bundle, verify_bundle, write_bundle
from engine.core.decide import decide
from engine.core.models import DecisionRequest
from engine.policy.git import history, load_policy_at_ref
from engine.policy.repository import PolicyRepository
from tests.conftest import request_dict
from tests.engine.rego.conftest import POLICIES

KEY = b"a-test-signing-secret-of-32-bytes!!"
IDS = ["support-password-reset-rego", "payout-authorization-rego"]


def test_bundle_has_manifest_roots_modules_and_data(repo: PolicyRepository, tmp_path: Path) -> None:
    files = write_bundle(tmp_path / "b.tar.gz", [repo.get(i) for i in IDS])
    manifest = json.loads(files[".manifest"])
    assert "liveguard/support_password_reset_rego" in manifest["roots"]
    assert "liveguard/support_password_reset_rego/policy.rego" in files
    assert "liveguard_data/payout_authorization_rego/data.json" in files
    assert manifest["revision"]


def test_opa_evaluates_the_bundle_contents(
    repo: PolicyRepository, tmp_path: Path, opa_engine_cls: Any
) -> None:
    write_bundle(tmp_path / "b.tar.gz", [repo.get(IDS[0])])
    opa = opa_engine_cls()
    for name, data in read_bundle(tmp_path / "b.tar.gz").items():
        if name.endswith(".rego"):
            opa.add_policy(name, data.decode())
        elif name.endswith("data.json"):
            opa.add_data(json.loads(data), ".".join(name.split("/")[:-1]))
    policy = repo.get(IDS[0])
    request = DecisionRequest.model_validate(request_dict())
    ours = decide(request, policy)
    view = policy.view(request)
    from engine.core.fusion import fuse

    fused = fuse(view.signals, policy.fusion)
    doc = policy.evaluator.input_for(view, fused, fused.evidence_mass < policy.fusion.min_evidence)
    theirs = opa.eval_document("liveguard.support_password_reset_rego.decision", doc)
    assert theirs["action"] == ours.action.value


def test_signed_bundle_verifies_with_the_key(repo: PolicyRepository, tmp_path: Path) -> None:
    write_bundle(tmp_path / "b.tar.gz", [repo.get(i) for i in IDS], KEY)
    assert verify_bundle(tmp_path / "b.tar.gz", KEY) == []


def test_signature_fails_with_another_key(repo: PolicyRepository, tmp_path: Path) -> None:
    write_bundle(tmp_path / "b.tar.gz", [repo.get(IDS[0])], KEY)
    problems = verify_bundle(tmp_path / "b.tar.gz", b"another-secret-of-at-least-32-bytes!")
    assert problems and "does not verify" in problems[0]


def _pem_pair(kind: str) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    private: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return (
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@pytest.mark.parametrize(("kind", "alg"), [("rsa", "RS256"), ("ec", "ES256")])
def test_bundle_signed_with_a_private_key_verifies_with_its_public_key(
    repo: PolicyRepository, tmp_path: Path, kind: str, alg: str
) -> None:
    import jwt

    private, public = _pem_pair(kind)
    path = tmp_path / "b.tar.gz"
    write_bundle(path, [repo.get(IDS[0])], private)
    token = json.loads(read_bundle(path)[".signatures.json"])["signatures"][0]
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert verify_bundle(path, public) == []
    _, other = _pem_pair(kind)
    assert "does not verify" in verify_bundle(path, other)[0]


def test_asymmetric_bundle_does_not_verify_with_a_secret_named_like_the_public_key(
    repo: PolicyRepository, tmp_path: Path
) -> None:
    """The key decides the algorithm, never the token: the public key's bytes used as an
    HS256 secret must not verify an RS256 bundle (algorithm confusion)."""
    private, public = _pem_pair("rsa")
    path = tmp_path / "b.tar.gz"
    write_bundle(path, [repo.get(IDS[0])], private)
    problems = verify_bundle(path, b"not a pem: " + public)
    assert problems and "does not verify" in problems[0]


def test_tampered_file_is_reported(repo: PolicyRepository, tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(path, [repo.get(IDS[0])], KEY)
    files = read_bundle(path)
    name = "liveguard/support_password_reset_rego/policy.rego"
    files[name] = files[name].replace(b"import rego.v1", b"import rego.v1\n# tampered")
    assert b"# tampered" in files[name]
    with tarfile.open(path, "w:gz") as tar:
        for n, data in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert any("modified after signing" in p for p in verify_bundle(path, KEY))


def test_history_lists_committed_versions_newest_first() -> None:
    versions = history(POLICIES, "support-password-reset")
    assert len(versions) >= 2
    assert versions[0].date >= versions[-1].date
    assert all(v.digest.startswith("sha256:") and len(v.commit) == 40 for v in versions)


def test_policy_loads_at_a_git_ref_with_that_commits_digest(repo: PolicyRepository) -> None:
    oldest = history(POLICIES, "support-password-reset")[-1]
    policy = load_policy_at_ref(POLICIES, "support-password-reset", oldest.commit)
    assert policy.digest == oldest.digest
    assert repo.get(f"support-password-reset@{oldest.commit}").digest == oldest.digest
