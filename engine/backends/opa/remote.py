"""Remote OPA backend: Rego policies evaluated by an OPA fleet via opa-python-client.

With ``LIVEGUARD_OPA_URL`` set, a Rego policy's evaluator sends
``POST /v1/data/liveguard/<package>/decision`` with the same input the embedded backend
would use (the minimized request pruned to what the policy reads, plus ``input.fused``) and
validates the result exactly like an embedded decision. A timeout, a transport or HTTP error,
an undefined or invalid result raises ``PolicyEvalError``: ``decide`` turns that into the
policy's ``fail_mode`` action. Every failure is logged and counted
(``liveguard_opa_remote_failures_total{policy, reason}``).

The policy is still compiled locally at load: that is where interpreter gaps are caught and
where the plan tells governance which fields the policy reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import structlog
from opa_client import OpaClient
from prometheus_client import Counter

from engine.backends.rego.document import to_outcome
from engine.backends.rego.embedded import RegoEvaluator
from engine.core.errors import PolicyEvalError
from engine.core.models import Action, Fused
from engine.core.policy import Outcome

if TYPE_CHECKING:
    from engine.core.policy import PolicyView
    from engine.settings import Settings

log = structlog.get_logger("liveguard.opa_remote")

FAILURES = Counter(
    "liveguard_opa_remote_failures",
    "Remote OPA evaluations that failed and fell back to the policy's fail_mode.",
    ["policy", "reason"],
)
CALLS = Counter("liveguard_opa_remote_calls", "Remote OPA evaluations attempted.", ["policy"])


def client_for(settings: Settings) -> OpaClient:
    url = urlsplit(settings.opa_url or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(
            f"LIVEGUARD_OPA_URL: expected http(s)://host[:port], got {settings.opa_url!r}"
        )
    return OpaClient(
        host=url.hostname,
        port=url.port or (443 if url.scheme == "https" else 8181),
        ssl=url.scheme == "https",
        token=settings.opa_token.get_secret_value() if settings.opa_token else None,
        retries=0,  # a decision is on a live call: fail safe fast instead of retrying
        timeout=settings.opa_timeout_ms / 1000,
    )


class RemoteOpaEvaluator:
    """Asks OPA for the decision; any failure is a PolicyEvalError (→ fail_mode)."""

    engine = "opa"
    #: A network call (up to opa_timeout_ms): the service evaluates off its event loop.
    offload = True

    def __init__(
        self, local: RegoEvaluator, settings: Settings, *, fail_mode: Action, policy_id: str = ""
    ) -> None:
        self.local = local
        self.client = client_for(settings)
        #: This evaluator bounds its own wall time (the HTTP timeout): the engine's budget
        #: check and the service's wait use it instead of the policy's CPU budget.
        self.timeout_ms = float(settings.opa_timeout_ms)
        self.fail_mode = fail_mode
        self.policy_id = policy_id or local.compiled.package
        self.package_path = f"liveguard/{local.compiled.package}"

    @property
    def compiled(self) -> Any:
        return self.local.compiled

    @property
    def coverage(self) -> Any:
        return self.local.coverage

    @property
    def signal_phrases(self) -> dict[str, str]:
        return self.local.signal_phrases

    def coverage_report(self) -> tuple[list[str], list[str]]:
        return self.local.coverage_report()

    def fields_read(self) -> set[str]:
        return self.local.fields_read()

    def evaluate(self, view: PolicyView, fused: Fused, degraded: bool) -> Outcome:
        doc = self.local.input_for(view, fused, degraded)
        CALLS.labels(self.policy_id).inc()
        try:
            response = self.client.query_rule(doc, self.package_path, "decision")
        except requests.Timeout as exc:
            raise self._failed("timeout", exc) from None
        except requests.HTTPError as exc:
            raise self._failed(f"http_{exc.response.status_code}", exc) from None
        except (requests.RequestException, ValueError) as exc:
            raise self._failed("unavailable", exc) from None
        if not isinstance(response, dict) or "result" not in response:
            raise self._failed("undefined", "OPA returned no result (decision undefined)")
        try:
            outcome, fired = to_outcome(response["result"])
        except PolicyEvalError as exc:
            raise self._failed("invalid", exc) from None
        self.local.coverage.update(fired)
        return outcome

    def _failed(self, reason: str, detail: object) -> PolicyEvalError:
        FAILURES.labels(self.policy_id, reason).inc()
        log.warning(
            "opa_remote_failed",
            policy=self.policy_id,
            reason=reason,
            detail=str(detail)[:300],
            fail_mode=self.fail_mode.value,
        )
        return PolicyEvalError(f"remote OPA {reason}: {str(detail)[:200]}")
