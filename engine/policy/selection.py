"""A named policy must cover the session it decides.

A caller may name the policy that decides its request (``policy`` in the request, or the
package of an OPA query), but only among the policies whose ``applies_to`` covers the
session's channel and kind: otherwise a password reset with nine failed attempts could
ask ``conference-default`` for a lenient answer instead of being blocked by its own
policy. No service role may override the scope; candidates are compared on real traffic
with shadow mode or on corpora with simulations, never by choosing a policy per request.
"""

from __future__ import annotations

from engine.core.errors import PolicyNotApplicable
from engine.core.manifest import PolicyManifest
from engine.core.models import DecisionRequest


def ensure_applies(manifest: PolicyManifest, request: DecisionRequest) -> None:
    """Raise ``PolicyNotApplicable`` unless ``manifest`` covers ``request``'s session."""
    s = request.session
    if manifest.applies_to.matches(s.channel, s.kind):
        return
    scope = manifest.applies_to
    raise PolicyNotApplicable(
        f"policy: {manifest.id!r} does not apply to a {s.channel} session of kind "
        f"{s.kind!r} (it covers channels {', '.join(scope.channels)} and kinds "
        f"{', '.join(scope.kinds)}); omit 'policy' to let applies_to choose, or name a "
        "policy that covers this session"
    )
