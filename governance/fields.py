"""The field vocabulary a policy can read from a normalized request.

Data-flow manifests declare request fields by these dotted paths; minimization and
``governance check`` both speak this vocabulary, so a typo in a manifest is caught when
the manifest loads rather than silently declaring nothing.
"""

from __future__ import annotations

import re

from signals import Modality

__all__ = [
    "ALWAYS_READABLE_ROOTS",
    "CORRELATION_FIELDS",
    "KNOWN_FIELDS",
    "KNOWN_FIELD_ROOTS",
    "field_path_error",
    "validate_field_path",
]

#: Every concrete personal-data field of the request, as the policy sees it (``signals.*``
#: is open-ended and checked by shape below).
KNOWN_FIELDS: frozenset[str] = frozenset(
    {
        "session.id",
        "session.channel",
        "session.kind",
        "session.participant",
        "session.consent.media_analysis",
        "session.consent.raw_media_escalation",
        "identity.assurance",
        "identity.method",
        "identity.seconds_since_auth",
        "identity.failed_attempts",
        "transaction.kind",
        "transaction.value",
        "transaction.currency",
        "device.posture",
        "device.new_device",
        "device.geo_mismatch",
    }
)

#: Top-level request sections a manifest may declare fields under.
KNOWN_FIELD_ROOTS: frozenset[str] = frozenset(
    {"session", "identity", "transaction", "device", "signals"}
)

#: Engine output (``fused.*``, ``risk``) is derived, not personal data: always readable.
ALWAYS_READABLE_ROOTS: frozenset[str] = frozenset({"fused", "risk"})

#: Kept even when undeclared: the session id is the correlation key for logs and review,
#: not something a policy decides on.
CORRELATION_FIELDS: frozenset[str] = frozenset({"session.id"})

# Every proper prefix of a known field (``session``, ``session.consent``) is a valid
# declaration too: it covers the whole subtree.
_KNOWN_PREFIXES: frozenset[str] = frozenset(
    ".".join(parts[:i])
    for f in KNOWN_FIELDS
    for parts in [f.split(".")]
    for i in range(1, len(parts))
)
_MODALITIES: frozenset[str] = frozenset(m.value for m in Modality)
_SEGMENT = re.compile(r"^[a-z][a-z0-9_]*$")


def field_path_error(path: str) -> str | None:
    """Why ``path`` is not a field a manifest can declare, or ``None`` when it is."""
    if path in KNOWN_FIELDS or path in _KNOWN_PREFIXES:
        return None
    parts = path.split(".")
    root = parts[0]
    if root in ALWAYS_READABLE_ROOTS:
        return None
    if root == "signals":
        if len(parts) == 1:
            return None  # every signal
        if parts[1] not in _MODALITIES:
            return (
                f"unknown signal modality {parts[1]!r} in {path!r}; expected "
                f"signals.<modality>.<name> with modality one of: {', '.join(sorted(_MODALITIES))}"
            )
        if len(parts) == 2:
            return None  # every signal of one modality
        if len(parts) == 3 and _SEGMENT.match(parts[2]):
            return None
        return f"expected a signal path like 'signals.audio.synthetic_voice', got {path!r}"
    if root not in KNOWN_FIELD_ROOTS:
        return (
            f"unknown field {path!r}; fields start with one of: "
            f"{', '.join(sorted(KNOWN_FIELD_ROOTS))}"
        )
    siblings = sorted(f for f in KNOWN_FIELDS if f.startswith(root + "."))
    return f"unknown field {path!r}; known {root} fields: {', '.join(siblings)}"


def validate_field_path(path: str) -> str:
    """Return ``path`` unchanged, or raise ``ValueError`` naming what is wrong with it."""
    problem = field_path_error(path)
    if problem is not None:
        raise ValueError(problem)
    return path
