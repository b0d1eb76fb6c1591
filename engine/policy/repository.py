"""The policy repository: the policies of one directory, found by id or by the session
they apply to, loaded once and cached."""

from __future__ import annotations

import contextlib
from pathlib import Path

from engine.core.errors import PolicyAmbiguous, PolicyInvalid, PolicyNotFound
from engine.core.manifest import POLICY_ID, PolicyManifest
from engine.core.models import DecisionRequest
from engine.core.policy import Policy
from engine.policy.loader import load_policy_folder
from governance.folder import MANIFEST, validate_file


class PolicyRepository:
    """The policies of one directory, loaded lazily (or all at once by ``preload``) and
    cached by id. A policy that did not load is cached too: it is not parsed again per call."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache: dict[str, Policy] = {}
        self._failed: dict[str, PolicyInvalid] = {}
        self._manifests: dict[str, PolicyManifest] | None = None
        self._ids: list[str] | None = None

    def ids(self) -> list[str]:
        if self._ids is not None:
            return list(self._ids)
        if not self.root.is_dir():
            raise PolicyNotFound(f"{self.root}: policy directory does not exist")
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST).is_file())

    def preload(self) -> dict[str, PolicyInvalid]:
        """Load every policy now (the service does this at startup, never on a request);
        afterwards the set of policies is fixed and ``get`` does no I/O. Returns the ones
        that did not load, by id."""
        ids = self.ids()
        for pid in ids:
            with contextlib.suppress(PolicyInvalid):
                self.get(pid)
        self._ids = ids
        return dict(self._failed)

    def get(self, policy_id: str) -> Policy:
        cached = self._cache.get(policy_id)
        if cached is not None:
            return cached
        failed = self._failed.get(policy_id)
        if failed is not None:
            raise failed
        if "@" in policy_id:
            from engine.policy.git import load_policy_at_ref  # optional: Git history

            policy = load_policy_at_ref(self.root, *policy_id.split("@", 1))
        else:
            known = self._ids if self._ids is not None else None
            if (
                not POLICY_ID.match(policy_id)
                or (known is not None and policy_id not in known)
                or (known is None and not (self.root / policy_id / MANIFEST).is_file())
            ):
                listed = ", ".join(self.ids()) or "none"
                raise PolicyNotFound(f"unknown policy {policy_id!r}; known policies: {listed}")
            try:
                policy = load_policy_folder(self.root / policy_id)
            except PolicyInvalid as exc:
                self._failed[policy_id] = exc
                raise
        self._cache[policy_id] = policy
        return policy

    def all(self) -> list[Policy]:
        return [self.get(i) for i in self.ids()]

    def manifests(self) -> dict[str, PolicyManifest]:
        """Every policy's manifest, read once: selection by applies_to runs per request."""
        if self._manifests is not None:
            return self._manifests
        out: dict[str, PolicyManifest] = {}
        for pid in self.ids():
            problems: list[str] = []
            m = validate_file(PolicyManifest, self.root / pid / MANIFEST, problems)
            if m is None:
                raise PolicyInvalid(f"policy {pid!r} does not load", problems=problems)
            out[pid] = m
        self._manifests = out
        return out

    def select(self, request: DecisionRequest) -> Policy:
        """The policy named by the request, or the one whose applies_to matches it."""
        if request.policy:
            return self.get(request.policy)
        return self.get(self.match(request.session.channel, request.session.kind))

    def match(self, channel: str, kind: str) -> str:
        hits = [pid for pid, m in self.manifests().items() if m.applies_to.matches(channel, kind)]
        if not hits:
            raise PolicyNotFound(
                f"no policy applies to channel {channel!r} and session kind {kind!r}; "
                "name one with the request's 'policy' field"
            )
        if len(hits) > 1:
            raise PolicyAmbiguous(
                f"several policies apply to channel {channel!r} and session kind {kind!r}: "
                f"{', '.join(hits)}; name one with the request's 'policy' field"
            )
        return hits[0]


def load_policy(policy: str | Path, policies_dir: Path | str | None = None) -> Policy:
    """Load a policy by id (from ``policies_dir``, default ``./policies``) or by folder path."""
    as_path = Path(policy)
    if isinstance(policy, Path) or (as_path.is_dir() and (as_path / MANIFEST).is_file()):
        return load_policy_folder(as_path)
    return PolicyRepository(Path(policies_dir or "policies")).get(str(policy))
