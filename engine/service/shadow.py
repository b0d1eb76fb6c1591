"""Shadow mode: a candidate policy version decides beside the live one, and only watches.

``LIVEGUARD_SHADOW=<policy-id>@<ref|path>``: a path to a policy folder, or a Git ref
loaded through ``PolicyRepository.get("id@ref")``. The candidate sees the same request on
every request the live policy of that id decides; its answer is stored apart and never
reaches the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.core.decide import decide
from engine.core.errors import LiveguardError, PolicyInvalid, PolicyNotFound
from engine.core.manifest import POLICY_ID
from engine.core.models import Decision, DecisionRequest
from engine.core.policy import Policy
from engine.policy.loader import load_policy_folder
from engine.policy.repository import PolicyRepository
from governance.folder import MANIFEST


class ShadowConfigInvalid(LiveguardError):
    code = "shadow_invalid"


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    policy_id: str
    target: str

    @property
    def label(self) -> str:
        return f"{self.policy_id}@{self.target}"


def parse_shadow(value: str) -> ShadowSpec:
    pid, sep, target = value.partition("@")
    if not sep or not target or not POLICY_ID.match(pid):
        raise ShadowConfigInvalid(
            f"LIVEGUARD_SHADOW={value!r}: expected <policy-id>@<git-ref|path>, "
            "e.g. support-password-reset@./candidates/support-password-reset"
        )
    return ShadowSpec(pid, target)


def load_candidate(spec: ShadowSpec, repo: PolicyRepository) -> Policy:
    path = Path(spec.target).expanduser()
    if (path / MANIFEST).is_file():
        # The folder may be named anything (a checkout, a temp dir): pass it as a ref so
        # the loader does not insist the folder carries the policy id; we check the id.
        ref = None if path.name == spec.policy_id else f"path:{path}"
        policy = load_policy_folder(path, git_ref=ref)
        if policy.manifest.id != spec.policy_id:
            raise ShadowConfigInvalid(
                f"LIVEGUARD_SHADOW: {path} holds policy {policy.manifest.id!r}, "
                f"not {spec.policy_id!r}"
            )
        return policy
    try:
        return repo.get(spec.label)
    except ModuleNotFoundError as exc:
        raise ShadowConfigInvalid(
            f"LIVEGUARD_SHADOW={spec.label!r}: {spec.target!r} is not a policy folder, and "
            f"Git refs are not available in this build ({exc.name} is missing)"
        ) from None
    except (PolicyNotFound, PolicyInvalid) as exc:
        raise ShadowConfigInvalid(
            f"LIVEGUARD_SHADOW={spec.label!r}: {exc.message}", problems=exc.problems
        ) from None


class ShadowRunner:
    """Evaluates the candidate; its failures are contained, never the caller's problem."""

    def __init__(self, spec: ShadowSpec, candidate: Policy) -> None:
        self.spec = spec
        self.candidate = candidate

    @property
    def policy_id(self) -> str:
        return self.spec.policy_id

    def applies(self, live: Decision) -> bool:
        return live.policy.id == self.spec.policy_id

    def evaluate(self, request: DecisionRequest, live: Decision, now: datetime) -> Decision:
        # Same decision id: the shadow result joins the live event it shadows.
        return decide(request, self.candidate, now=now, decision_id=live.decision_id)
