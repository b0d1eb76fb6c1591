"""The ``input`` document a Rego policy is given, and which data-flow fields it reads."""

from __future__ import annotations

from typing import Any

from engine.backends.rego.plan import ANY
from engine.backends.rego.plan import Path as InputPath
from engine.core.fusion import FusionConfig
from engine.core.models import Fused
from engine.core.policy import PolicyView

#: Decimal places of every non-integer number in ``input``. rego-cpp's C input API
#: (``regoInputFloat``) keeps 6 decimal places (it formats doubles like ``%f``), and its
#: text input (``set_input_term``) is ~10× slower. Rounding here, once, gives every backend
#: (regopy, the OPA oracle, a remote OPA) the very same numbers, so they cannot disagree on
#: a comparison that only the lost digits would decide.
INPUT_DECIMALS = 6


def _q(value: float) -> float:
    return round(value, INPUT_DECIMALS)


def request_input(view: PolicyView, fused: Fused, degraded: bool) -> dict[str, Any]:
    """The full ``input`` document: minimized request fields, kept signals, the fusion."""
    doc: dict[str, Any] = {}
    for key, value in view.ctx.items():
        if value is None or key.startswith(("signals.", "fused.")):
            continue
        parts = key.split(".")
        node = doc
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _q(value) if type(value) is float else value
    doc.setdefault("session", {})["id"] = view.request.session.id
    doc["signals"] = [_signal(s) for s in view.signals]
    doc["fused"] = {
        "risk": _q(fused.risk),
        "log_odds": _q(fused.log_odds),
        "prior_log_odds": _q(fused.prior_log_odds),
        "evidence_mass": _q(fused.evidence_mass),
        "signal_count": len(fused.contributions),
        "degraded": degraded,
        "contributions": [
            {
                "signal": c.signal,
                "detector": c.detector,
                "score": _q(c.score),
                "confidence": _q(c.confidence),
                "weight": _q(c.weight),
                "log_odds": _q(c.log_odds),
                "capped": c.capped,
            }
            for c in fused.contributions
        ],
    }
    return doc


def _signal(s: Any) -> dict[str, Any]:
    return {
        "name": s.name,
        "modality": str(s.modality),
        "score": _q(s.score),
        "confidence": _q(s.confidence),
        "detector": s.detector,
        "window_ms": s.window_ms,
        "evidence": [
            {"code": e.code, "message": e.message}
            | ({} if e.value is None else {"value": _q(e.value)})
            for e in s.evidence
        ],
    }


def fields_read(reads: frozenset[InputPath], fusion: FusionConfig) -> set[str]:
    """Data-flow fields behind the input paths a policy can read.

    ``input.signals`` holds only signals the manifest declares; reading it means reading
    the signals the policy fuses. ``input.fused`` is engine output, not personal data.
    """
    out = {f"signals.{name}" for name in fusion.weights}
    for path in reads:
        if not path:
            out |= {"session", "identity", "transaction", "device"}
            continue
        head = path[0]
        if head in ("fused", "signals"):
            continue
        if head == ANY:
            out |= {"session", "identity", "transaction", "device"}
            continue
        steps = []
        for step in path:
            if step == ANY:
                break
            steps.append(step)
        if steps != ["session", "id"]:  # the correlation key, always kept
            out.add(".".join(steps))
    return out
