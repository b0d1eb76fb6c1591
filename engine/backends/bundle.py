"""OPA bundles: ``liveguard bundle build`` / ``verify``.

Layout (what ``opa run --bundle`` accepts)::

    .manifest                                {"revision": …, "roots": [...]}
    liveguard/<package>/*.rego               the policy modules
    liveguard_data/<package>/data.json       the policy's data.json (mounted where the
                                             embedded engine mounts it)
    .signatures.json                         optional: {"signatures": [JWT]}

The revision is the Git commit when the policies are committed and clean, else a sha256
over the policies' digests. Signing follows OPA's bundle signature format: one JWT whose
``files`` claim lists every file with its SHA-256 (JSON files hashed in their canonical
compact, key-sorted form, which is how they are written here); HS256 with a secret key
file, or RS256/ES256 with a PEM private key (verified with the matching public key).

YAML policies are exported as data plus the generic evaluator module
(``engine.backends.export``): ``liveguard/<package>/yaml_policy.rego`` and their data.json,
so OPA decides them given the engine's fusion in ``input.fused``. A policy beyond the
evaluator's limits (condition depth, rule count) is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import jwt

from engine.backends.export import MODULE_FILE, export_yaml_policy, package_of
from engine.backends.rego.embedded import DATA_ROOT
from engine.core.errors import BundleInvalid
from engine.core.policy import Policy

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bundle_files(policies: list[Policy]) -> dict[str, bytes]:
    """Path → bytes of every file of the bundle except the signatures."""
    files: dict[str, bytes] = {}
    roots: list[str] = []
    for policy in policies:
        pkg, modules, data = _policy_sources(policy)
        roots += [f"liveguard/{pkg}", f"{DATA_ROOT}/{pkg}"]
        for name, src in sorted(modules.items()):
            files[f"liveguard/{pkg}/{name}"] = src.encode()
        files[f"{DATA_ROOT}/{pkg}/data.json"] = canonical_json(data)
    files[MANIFEST] = canonical_json({"revision": revision(policies), "roots": sorted(roots)})
    return files


def _policy_sources(policy: Policy) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(package, modules, data) of one policy as OPA runs it."""
    if policy.manifest.engine == "rego":
        compiled = policy.evaluator.compiled  # type: ignore[attr-defined]
        return compiled.package, dict(compiled.modules), compiled.data
    if policy.spec is None:
        raise BundleInvalid(f"{policy.id}: engine {policy.manifest.engine!r} cannot be bundled")
    # A YAML policy: its data plus the generic evaluator module (engine/backends/yaml_policy.rego).
    module, data = export_yaml_policy(policy)
    return package_of(policy.id), {MODULE_FILE: module}, data


def revision(policies: list[Policy]) -> str:
    folders = [str(p.path) for p in policies]
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *folders],
            capture_output=True,
            text=True,
            check=True,
            cwd=policies[0].path.parent,
        ).stdout.strip()
        if not dirty:
            return subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                check=True,
                cwd=policies[0].path.parent,
            ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    h = hashlib.sha256()
    for p in sorted(policies, key=lambda p: p.id):
        h.update(f"{p.id}@{p.manifest.version}={p.digest}\n".encode())
    return "sha256:" + h.hexdigest()


def _algorithm(key: bytes) -> str:
    """The JWT algorithm a key file implies: a PEM RSA key → RS256, a PEM P-256 key → ES256
    (private keys sign, public keys verify), anything else is an HS256 secret.

    The algorithm comes from the key, never from the token, so a token cannot choose how
    it is checked (no HS256-with-a-public-key confusion).
    """
    if not key.lstrip().startswith(b"-----BEGIN"):
        return "HS256"
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_pem_public_key,
    )

    try:
        parsed: Any = (
            load_pem_private_key(key, password=None)
            if b"PRIVATE KEY" in key
            else load_pem_public_key(key)
        )
    except (ValueError, TypeError) as exc:
        raise BundleInvalid(f"signing key: not a usable PEM key ({exc})") from None
    if isinstance(parsed, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    if isinstance(parsed, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if parsed.curve.name != "secp256r1":
            raise BundleInvalid(f"signing key: ES256 needs a P-256 key, got {parsed.curve.name}")
        return "ES256"
    raise BundleInvalid("signing key: expected an RSA or P-256 EC key, or an HS256 secret")


def sign(files: dict[str, bytes], key: bytes, keyid: str = "liveguard") -> bytes:
    claims = {
        "files": [
            {"name": name, "hash": hashlib.sha256(data).hexdigest(), "algorithm": "SHA-256"}
            for name, data in sorted(files.items())
        ],
        "keyid": keyid,
        "iat": int(time.time()),
    }
    token = jwt.encode(
        claims,
        key.strip() if _algorithm(key) == "HS256" else key,
        algorithm=_algorithm(key),
        headers={"kid": keyid},
    )
    return canonical_json({"signatures": [token]})


def write_bundle(
    path: Path, policies: list[Policy], signing_key: bytes | None = None
) -> dict[str, bytes]:
    files = bundle_files(policies)
    if signing_key is not None:
        files[SIGNATURES] = sign(files, signing_key)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"/{name}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return files


def read_bundle(path: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            return {
                m.name.lstrip("/"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isfile()
            }
    except (OSError, tarfile.TarError) as exc:
        raise BundleInvalid(f"{path}: not a readable .tar.gz bundle ({exc})") from None


def verify_bundle(path: Path, key: bytes | None = None) -> list[str]:
    """Problems with a bundle (empty = valid): manifest, roots, and the signature if any."""
    files = read_bundle(path)
    problems: list[str] = []
    try:
        manifest = json.loads(files[MANIFEST])
    except (KeyError, ValueError):
        return [f"{path}: {MANIFEST} is missing or not JSON"]
    roots = manifest.get("roots") or []
    for name in files:
        if name in (MANIFEST, SIGNATURES):
            continue
        if not any(name == r or name.startswith(r + "/") for r in roots):
            problems.append(f"{path}: {name} lies outside the manifest roots {roots}")
    if SIGNATURES not in files:
        if key is not None:
            problems.append(f"{path}: not signed ({SIGNATURES} is missing)")
        return problems
    if key is None:
        return [*problems, f"{path}: signed; pass --verification-key to check the signature"]
    try:
        token = json.loads(files[SIGNATURES])["signatures"][0]
        alg = _algorithm(key)
        claims = jwt.decode(token, key.strip() if alg == "HS256" else key, algorithms=[alg])
    except (KeyError, IndexError, ValueError, jwt.PyJWTError) as exc:
        return [*problems, f"{path}: signature does not verify ({exc})"]
    listed = {f["name"]: f["hash"] for f in claims.get("files", [])}
    for name, data in files.items():
        if name == SIGNATURES:
            continue
        if name not in listed:
            problems.append(f"{path}: {name} is not covered by the signature")
        elif listed[name] != hashlib.sha256(data).hexdigest():
            problems.append(f"{path}: {name} was modified after signing (sha256 mismatch)")
    for name in listed:
        if name not in files:
            problems.append(f"{path}: {name} is signed but missing from the bundle")
    return problems
