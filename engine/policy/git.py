"""Policy versions from Git: load ``id@ref``, list a policy's history, lint version bumps.

A policy at a ref is extracted with ``git archive`` into a cache folder keyed by the commit
(content-addressed, so it is extracted once and never goes stale) and loaded like any other
folder; its digest is computed from the extracted files, so it equals the digest the
working tree had at that commit.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import PolicyNotFound
from engine.core.manifest import POLICY_ID
from engine.core.policy import Policy
from engine.policy.loader import load_policy_folder
from governance.files import FileRefused, load_yaml
from governance.folder import MANIFEST, folder_digest

CACHE = Path(tempfile.gettempdir()) / "liveguard-git"


def _git(cwd: Path, *args: str, binary: bool = False) -> str | bytes:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        raise PolicyNotFound(
            f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout if binary else done.stdout.decode()


def _locate(root: Path, policy_id: str) -> tuple[Path, str]:
    if not POLICY_ID.match(policy_id):
        raise PolicyNotFound(f"unknown policy {policy_id!r}")
    root = Path(root).resolve()
    top = Path(str(_git(root, "rev-parse", "--show-toplevel")).strip())
    return top, (root / policy_id).relative_to(top).as_posix()


def extract(root: Path, policy_id: str, commit: str) -> Path:
    """The policy folder as it was at ``commit`` (a full sha), extracted once."""
    top, rel = _locate(root, policy_id)
    dest = CACHE / commit / policy_id
    if (dest / MANIFEST).is_file():
        return dest
    data = _git(top, "archive", "--format=tar", commit, rel, binary=True)
    staging = Path(tempfile.mkdtemp(prefix="liveguard-git-"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # type: ignore[arg-type]
        tar.extractall(staging, filter="data")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # another process extracted it first
        (staging / rel).rename(dest)
    return dest


def resolve(root: Path, ref: str) -> str:
    return str(_git(Path(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")).strip()


def load_policy_at_ref(root: Path, policy_id: str, ref: str) -> Policy:
    """``id@ref``: the policy as committed at a branch, tag or commit."""
    try:
        commit = resolve(root, ref)
    except PolicyNotFound:
        raise PolicyNotFound(f"{policy_id}@{ref}: unknown Git ref {ref!r}") from None
    try:
        folder = extract(root, policy_id, commit)
    except PolicyNotFound:
        raise PolicyNotFound(
            f"{policy_id}@{ref}: the policy does not exist at {commit[:12]}"
        ) from None
    return load_policy_folder(folder, git_ref=f"{ref} ({commit[:12]})")


@dataclass(frozen=True)
class Version:
    version: str
    digest: str
    commit: str
    date: str


def history(root: Path, policy_id: str) -> list[Version]:
    """Every commit that changed the policy folder, newest first."""
    top, rel = _locate(root, policy_id)
    log = str(_git(top, "log", "--format=%H%x09%cI", "--", rel)).strip()
    out: list[Version] = []
    for line in log.splitlines():
        commit, date = line.split("\t")
        try:
            folder = extract(root, policy_id, commit)
        except PolicyNotFound:
            continue  # the commit deleted the folder
        if not (folder / MANIFEST).is_file():
            continue
        manifest = _manifest(folder)
        out.append(Version(str(manifest.get("version", "?")), folder_digest(folder), commit, date))
    return out


def _manifest(folder: Path) -> dict[str, object]:
    """The manifest as data, read within the parse bounds; ``{}`` when it does not parse
    (loading the policy reports why)."""
    try:
        data = load_yaml(folder / MANIFEST)
    except FileRefused:
        return {}
    return data if isinstance(data, dict) else {}


def version_bump_problems(root: Path, policy_id: str) -> list[str]:
    """A policy whose content differs from what its version was first committed with.

    A version is fixed by its first commit: changing the folder afterwards (committed or
    not) without a new version is a lint error. Old, since-bumped history is not re-judged.
    """
    try:
        versions = history(root, policy_id)
    except PolicyNotFound:
        return []  # not a Git checkout: nothing to compare
    folder = Path(root) / policy_id
    if not (folder / MANIFEST).is_file():
        return []
    manifest = _manifest(folder)
    version = str(manifest.get("version", "?"))
    introduced = [v for v in versions if v.version == version]
    if not introduced:
        return []  # a new version, not committed yet
    first = introduced[-1]  # history is newest first
    digest = folder_digest(folder)
    if digest == first.digest:
        return []
    return [
        f"{folder / MANIFEST}: version {version} was first committed in {first.commit[:12]} "
        f"({first.date}) as {first.digest[:19]}…, but the policy now is {digest[:19]}…: "
        "bump the version (and its PIA's policy_version)"
    ]


def lint_versions(repo: object, ids: list[str]) -> list[str]:
    root = Path(repo.root)  # type: ignore[attr-defined]
    return [p for pid in ids for p in version_bump_problems(root, pid)]
