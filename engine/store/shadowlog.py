"""Shadow results: a candidate policy's answers, stored apart from the decision log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from engine.core.models import Decision
from engine.store.tables import ShadowResultRow


def shadow_row(
    live: Decision, shadow: Decision, candidate: str, time: datetime, expires_at: datetime
) -> dict[str, Any]:
    return {
        "decision_id": live.decision_id,
        "decided_at": time,
        "policy_id": live.policy.id,
        "candidate": candidate,
        "live_version": live.policy.version,
        "live_digest": live.policy.digest,
        "shadow_version": shadow.policy.version,
        "shadow_digest": shadow.policy.digest,
        "live_action": live.action.value,
        "shadow_action": shadow.action.value,
        "live_risk": live.risk,
        "shadow_risk": shadow.risk,
        "agree": live.action == shadow.action,
        "error": shadow.error,
        # The shadow's reasons, not the request: the live event already holds the input.
        "result": {
            "action": shadow.action.value,
            "risk": shadow.risk,
            "reasons": [r.code for r in shadow.reasons],
            "summary": shadow.summary,
        },
        "expires_at": expires_at,
    }


def summary(engine: Engine, policy_id: str, examples: int = 20) -> dict[str, Any]:
    """Agreement between live and candidate, and which actions changed how often."""
    r = ShadowResultRow
    with Session(engine) as s:
        pairs = s.execute(
            select(
                r.candidate,
                r.shadow_version,
                r.shadow_digest,
                r.live_action,
                r.shadow_action,
                func.count(),
            )
            .where(r.policy_id == policy_id)
            .group_by(
                r.candidate, r.shadow_version, r.shadow_digest, r.live_action, r.shadow_action
            )
        ).all()
        changed_rows = s.execute(
            select(r.decision_id, r.live_action, r.shadow_action, r.live_risk, r.shadow_risk)
            .where(r.policy_id == policy_id, r.agree.is_(False))  # type: ignore[attr-defined]
            .order_by(r.id.desc())  # type: ignore[union-attr]
            .limit(examples)
        ).all()
    candidates: dict[tuple[str, str, str], dict[str, Any]] = {}
    total = agree = 0
    changes: dict[str, int] = {}
    for cand, ver, dig, live_a, shadow_a, n in pairs:
        c = candidates.setdefault(
            (cand, ver, dig), {"candidate": cand, "version": ver, "digest": dig, "total": 0}
        )
        c["total"] += n
        total += n
        if live_a == shadow_a:
            agree += n
        else:
            key = f"{live_a}->{shadow_a}"
            changes[key] = changes.get(key, 0) + n
    return {
        "policy": policy_id,
        "candidates": list(candidates.values()),
        "total": total,
        "agree": agree,
        "agreement_rate": round(agree / total, 4) if total else None,
        "changed": dict(sorted(changes.items(), key=lambda kv: -kv[1])),
        "examples": [
            {
                "decision_id": d,
                "live_action": la,
                "shadow_action": sa,
                "live_risk": lr,
                "shadow_risk": sr,
            }
            for d, la, sa, lr, sr in changed_rows
        ],
    }
