"""The governance board's sign-off: a signed record binding one policy digest.

Records live in Git beside the policies, outside any policy folder (so a record never
changes the digest it binds)::

    policies/_signoffs/keyring.yaml                      the board's public keys
    policies/_signoffs/<policy-id>/<digest hex>.yaml     one record per signed-off digest

A record says who approved which digest of which policy, when, on which report (its
sha256), and carries an Ed25519 signature over all of that in canonical JSON. Editing any
field, moving a record to another digest or policy, or signing with a key that is not in
the keyring makes it invalid; the keyring itself changes only by a reviewed commit. The
folder name starts with ``_``, which is not a policy id, so the repository never lists it.

``verify_signoff`` is what ``serve`` calls before serving a digest; ``unsigned`` is what
``governance check`` reports.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from governance.errors import format_validation_error
from governance.files import FileRefused, load_yaml, read_bytes

__all__ = [
    "KEYRING_FILE",
    "SIGNOFF_DIR",
    "BoardKey",
    "Keyring",
    "ServingCheck",
    "SignOffError",
    "SignOffRecord",
    "SignOffStatus",
    "check_serving",
    "generate_key",
    "load_keyring",
    "load_private_key",
    "public_key_text",
    "record_path",
    "sign_off",
    "unsigned",
    "verify_signoff",
]

SIGNOFF_DIR = "_signoffs"
KEYRING_FILE = "keyring.yaml"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_STRICT = ConfigDict(frozen=True, extra="forbid")


class SignOffError(ValueError):
    pass


class BoardKey(BaseModel):
    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z][a-z0-9_.\-]*$", max_length=64)
    name: str = Field(min_length=1, max_length=120)
    role: str = Field(default="board", pattern=r"^[a-z][a-z0-9_\-]*$")
    public_key: str = Field(description="Raw Ed25519 public key, base64 (32 bytes).")

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, v: str) -> str:
        try:
            raw = base64.b64decode(v, validate=True)
        except ValueError:
            raise ValueError("expected base64 text") from None
        if len(raw) != 32:
            raise ValueError(f"expected a 32-byte Ed25519 public key, got {len(raw)} bytes")
        return v

    def key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))


class Keyring(BaseModel):
    model_config = _STRICT
    keys: list[BoardKey] = Field(max_length=200)

    @field_validator("keys")
    @classmethod
    def _unique(cls, v: list[BoardKey]) -> list[BoardKey]:
        ids = [k.id for k in v]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"expected unique key ids; repeated: {', '.join(dup)}")
        return v

    def get(self, key_id: str) -> BoardKey | None:
        return next((k for k in self.keys if k.id == key_id), None)


class ReportRef(BaseModel):
    model_config = _STRICT
    path: str = Field(max_length=500)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SignOffRecord(BaseModel):
    model_config = _STRICT
    kind: Literal["SignOffV1"] = "SignOffV1"
    policy: str = Field(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
    version: str = Field(max_length=64)
    digest: str = Field(pattern=DIGEST.pattern)
    by: str = Field(min_length=1, max_length=120)
    key_id: str = Field(max_length=64)
    role: str = Field(max_length=64)
    at: datetime
    report: ReportRef
    statement: str = Field(default="", max_length=2000)
    signature: str = Field(default="", max_length=200)

    def payload(self) -> bytes:
        """What is signed: every field but the signature, canonical JSON."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignOffStatus:
    """Whether one digest is signed off; ``problems`` says why not (one line each)."""

    policy: str
    digest: str
    valid: bool
    record: SignOffRecord | None = None
    path: Path | None = None
    problems: list[str] = field(default_factory=list)


def record_path(policies_root: Path, policy_id: str, digest: str) -> Path:
    if not DIGEST.match(digest):
        raise SignOffError(f"--digest: expected sha256:<64 hex digits>, got {digest!r}")
    return Path(policies_root) / SIGNOFF_DIR / policy_id / f"{digest.split(':', 1)[1]}.yaml"


def load_keyring(policies_root: Path) -> Keyring:
    path = Path(policies_root) / SIGNOFF_DIR / KEYRING_FILE
    try:
        data = load_yaml(path)
    except FileRefused as exc:
        raise SignOffError(str(exc)) from None
    try:
        return Keyring.model_validate(data)
    except ValidationError as exc:
        raise SignOffError("\n".join(format_validation_error(str(path), exc))) from None


def generate_key() -> tuple[bytes, str]:
    """A new Ed25519 key: (private key PEM, public key base64 for the keyring)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, public_key_text(key)


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(read_bytes(Path(path)), password=None)
    except FileRefused as exc:
        raise SignOffError(f"--key: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise SignOffError(f"--key: {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignOffError(f"--key: {path}: expected an Ed25519 key")
    return key


def sign_off(
    policies_root: Path,
    *,
    policy_id: str,
    version: str,
    digest: str,
    by: str,
    key: Ed25519PrivateKey,
    report: Path,
    statement: str = "",
    now: datetime | None = None,
) -> Path:
    """Write the signed record for ``digest``; the signing key must be in the keyring."""
    keyring = load_keyring(policies_root)
    public = public_key_text(key)
    member = next((k for k in keyring.keys if k.public_key == public), None)
    if member is None:
        raise SignOffError(
            "--key: this key is not in the board's keyring "
            f"({Path(policies_root) / SIGNOFF_DIR / KEYRING_FILE}); add its public key "
            f"{public} there by a reviewed commit first"
        )
    try:
        report_bytes = read_bytes(Path(report))
    except FileRefused as exc:
        raise SignOffError(f"--report: {exc}") from None
    path = record_path(policies_root, policy_id, digest)
    if path.exists():
        raise SignOffError(
            f"{path}: this digest is already signed off (records are never replaced)"
        )
    record = SignOffRecord(
        policy=policy_id,
        version=version,
        digest=digest,
        by=by,
        key_id=member.id,
        role=member.role,
        at=(now or datetime.now(UTC)).replace(microsecond=0),
        report=ReportRef(path=str(report), sha256=hashlib.sha256(report_bytes).hexdigest()),
        statement=statement,
    )
    signature = base64.b64encode(key.sign(record.payload())).decode()
    signed = record.model_copy(update={"signature": signature})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(signed.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    with path.open("x", encoding="utf-8") as fh:  # "x": two signers never overwrite each other
        fh.write(text)
    return path


def verify_signoff(
    policies_root: Path, policy_id: str, digest: str, *, keyring: Keyring | None = None
) -> SignOffStatus:
    """Is ``digest`` of ``policy_id`` signed off by a key in the board's keyring?

    Never raises for a bad record: the answer is ``valid=False`` with the reasons, so the
    service can log them and refuse, and ``governance check`` can list them.
    """

    def no(
        *problems: str, record: SignOffRecord | None = None, path: Path | None = None
    ) -> SignOffStatus:
        return SignOffStatus(policy_id, digest, False, record, path, list(problems))

    try:
        path = record_path(policies_root, policy_id, digest)
    except SignOffError as exc:
        return no(str(exc))
    if not path.is_file():
        return no(f"{policy_id} {digest[:19]}…: no sign-off record ({path})", path=path)
    try:
        ring = keyring or load_keyring(policies_root)
    except SignOffError as exc:
        return no(str(exc), path=path)
    try:
        data: Any = load_yaml(path)
        record = SignOffRecord.model_validate(data)
    except FileRefused as exc:
        return no(str(exc), path=path)
    except ValidationError as exc:
        return no(*format_validation_error(str(path), exc), path=path)
    if record.policy != policy_id or record.digest != digest:
        return no(
            f"{path}: binds {record.policy} {record.digest}, not {policy_id} {digest} "
            "(a record may not be moved)",
            record=record,
            path=path,
        )
    member = ring.get(record.key_id)
    if member is None:
        return no(
            f"{path}: key_id {record.key_id!r} is not in the board's keyring",
            record=record,
            path=path,
        )
    try:
        member.key().verify(base64.b64decode(record.signature, validate=True), record.payload())
    except (InvalidSignature, ValueError):
        return no(
            f"{path}: signature does not verify with {record.key_id!r}'s key "
            "(the record was altered or signed by another key)",
            record=record,
            path=path,
        )
    if record.role != member.role:
        return no(
            f"{path}: role {record.role!r} differs from the keyring's {member.role!r}",
            record=record,
            path=path,
        )
    return SignOffStatus(policy_id, digest, True, record, path, [])


def unsigned(policies_root: Path, live: list[tuple[str, str]]) -> list[SignOffStatus]:
    """Of ``(policy id, digest)`` pairs (the live versions), those without a valid sign-off."""
    try:
        ring: Keyring | None = load_keyring(policies_root)
    except SignOffError:
        ring = None  # each status then says why (the keyring problem)
    out = []
    for pid, digest in live:
        status = verify_signoff(policies_root, pid, digest, keyring=ring)
        if not status.valid:
            out.append(status)
    return out


@dataclass(frozen=True)
class ServingCheck:
    """What ``serve`` decides from the sign-offs of the versions it would serve."""

    allowed: bool
    override: bool
    unsigned: list[SignOffStatus]

    def health(self) -> dict[str, Any]:
        """For ``/health``: whether sign-off is enforced, and what is served without one."""
        return {
            "signoff": "override" if self.override and self.unsigned else "enforced",
            "unsigned": [f"{s.policy} {s.digest}" for s in self.unsigned],
        }

    def problems(self) -> list[str]:
        return [line for s in self.unsigned for line in s.problems]


def check_serving(
    policies_root: Path, live: list[tuple[str, str]], *, allow_unsigned: bool = False
) -> ServingCheck:
    """May these (policy id, digest) versions be served? Only if every one is signed off,
    unless the operator started the service with the explicit override (then it serves,
    and the override is logged and shown on /health)."""
    missing = unsigned(policies_root, live)
    return ServingCheck(
        allowed=not missing or allow_unsigned, override=allow_unsigned, unsigned=missing
    )
