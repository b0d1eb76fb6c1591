"""A board-facing summary of one policy's privacy posture (for the API and reports).

Plain JSON-ready values only: the governance board reads this next to the simulation
report before a policy version goes live.
"""

from __future__ import annotations

from typing import Any

from governance.dataflow import Category, DataFlowManifest
from governance.pia import PrivacyImpactAssessment

__all__ = ["summarize"]


def summarize(
    pia: PrivacyImpactAssessment | None, dataflow: DataFlowManifest | None
) -> dict[str, Any]:
    """Pattern, categories, escalation, retention per category, residual risk, review date.

    Either document may be missing (the summary then says ``None`` for its part) so a board
    page can still render a policy whose paperwork is incomplete.
    """
    out: dict[str, Any] = {
        "policy": (dataflow.policy if dataflow else None) or (pia.policy if pia else None),
        "pattern": None,
        "human_review": None,
        "categories": [],
        "processed_at": {},
        "raw_media_escalation": None,
        "escalation_requires_consent": None,
        "reviewer_access": [],
        "biometric_identification": None,
        "retention_days": {},
        "policy_version": None,
        "legal_basis": None,
        "art9_condition": None,
        "residual_risk": None,
        "review_date": None,
    }
    if dataflow is not None:
        # Category order as declared in the enum: raw media first, the way a DPO reads it.
        cats = [c for c in Category if any(el.category is c for el in dataflow.elements)]
        escalating = [
            el.escalation for el in dataflow.elements if el.escalation and el.escalation.allowed
        ]
        retention: dict[str, int | None] = {}
        for c in cats:
            days = [el.retention_days for el in dataflow.elements if el.category is c]
            # Missing retention shows as None: the board must not read it as "0 days".
            retention[c.value] = None if None in days else max(d for d in days if d is not None)
        out.update(
            pattern=dataflow.pattern.value,
            human_review=dataflow.human_review,
            categories=[c.value for c in cats],
            processed_at={
                c.value: sorted(
                    {el.processed_at.value for el in dataflow.elements if el.category is c}
                )
                for c in cats
            },
            raw_media_escalation=dataflow.raw_media_escalation_allowed(),
            escalation_requires_consent=all(e.requires_consent for e in escalating)
            if escalating
            else None,
            reviewer_access=sorted({r for e in escalating for r in e.reviewer_access}),
            biometric_identification=dataflow.uses_biometric_identification(),
            retention_days=retention,
        )
    if pia is not None:
        out.update(
            policy_version=pia.policy_version,
            legal_basis=pia.legal_basis,
            art9_condition=pia.art9_condition,
            residual_risk=pia.residual_risk.value,
            review_date=pia.review_date.isoformat(),
        )
    return out
