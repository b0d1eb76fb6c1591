"""The review queue: items born with their decision, claimed one reviewer at a time.

On PostgreSQL a claim is ``SELECT … FOR UPDATE SKIP LOCKED`` so replicas sharing one
queue never hand one item to two reviewers and never wait on each other; SQLite has a
single writer, so one ``UPDATE … RETURNING`` is already atomic there.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlmodel import Session

from engine.core.errors import LiveguardError
from engine.core.models import Action, Decision, ReviewObligation
from engine.store.events import utcnow
from engine.store.tables import ReviewItemRow
from governance.minimize import Projection

Outcome = Literal["confirmed_attack", "legitimate", "inconclusive"]
OUTCOMES: tuple[str, ...] = ("confirmed_attack", "legitimate", "inconclusive")
DEFAULT_QUEUE, DEFAULT_SLA_MINUTES = "review", 30


class ReviewConflict(LiveguardError):
    """The item is not claimed by this reviewer (or already resolved)."""

    code = "review_conflict"
    http_status = 409


def checklist(decision: Decision, event: dict[str, Any]) -> dict[str, Any]:
    """What a reviewer needs: what tripped, how sure, context, and the next step."""
    ob = next((o for o in decision.obligations if isinstance(o, ReviewObligation)), None)
    fused = decision.fused
    return {
        "what_tripped": [r.message for r in decision.reasons],
        "reason_codes": [r.code for r in decision.reasons],
        "confidence": {
            "risk": decision.risk,
            "degraded": decision.degraded,
            "evidence_mass": round(fused.evidence_mass, 4) if fused else None,
            "signals": [
                {
                    "name": s["name"],
                    "score": s["score"],
                    "confidence": s["confidence"],
                    "detector": f"{s['detector']}@{s['detector_version']}",
                }
                for s in event["signals"]
            ],
        },
        # Only what the log retains: the reviewer sees no more than the manifest allows.
        "context": {k: v for k, v in event["input"].items() if k != "policy"},
        "recommended_next_step": decision.summary,
        "steps": list(ob.checklist) if ob else [],
        "policy": {"id": decision.policy.id, "version": decision.policy.version},
    }


def redact_checklist(
    item: dict[str, Any], result: dict[str, Any], keep: set[str] | frozenset[str]
) -> dict[str, Any]:
    """A review checklist after part of its event passed retention: context re-minimized,
    reasons as the redacted decision ``result`` keeps them, only retained signals."""
    proj = Projection.from_allowed(frozenset(keep))
    out = dict(item)
    reasons = result.get("reasons", [])
    out["what_tripped"] = [r.get("message", "") for r in reasons]
    out["reason_codes"] = [r.get("code", "") for r in reasons]
    confidence = dict(item.get("confidence") or {})
    confidence["signals"] = [
        s for s in confidence.get("signals", []) if proj.keeps_signal(s.get("name", ""))
    ]
    out["confidence"] = confidence
    context = proj.apply(item.get("context") or {})
    context.pop("signals", None)
    out["context"] = context
    out["recommended_next_step"] = result.get("summary", "")
    return out


def review_row(decision: Decision, event: dict[str, Any]) -> dict[str, Any] | None:
    """The review item a decision opens (from its stored event row), or None."""
    if decision.action != Action.review:
        return None
    ob = next((o for o in decision.obligations if isinstance(o, ReviewObligation)), None)
    sla = ob.sla_minutes if ob else DEFAULT_SLA_MINUTES
    return {
        "id": secrets.token_hex(12),
        "decision_id": decision.decision_id,
        "policy_id": decision.policy.id,
        "policy_version": decision.policy.version,
        "queue": ob.queue if ob else DEFAULT_QUEUE,
        "status": "open",
        "created_at": event["decided_at"],
        "sla_due_at": event["decided_at"] + timedelta(minutes=sla),
        "checklist": checklist(decision, event),
        "expires_at": event["expires_at"],
    }


def claim_next(
    engine: Engine, reviewer: str, *, queue: str | None = None, claim_timeout_s: int = 1800
) -> ReviewItemRow | None:
    """Claim the oldest open item (or one whose claim went stale) for ``reviewer``."""
    now = utcnow()
    stale = now - timedelta(seconds=claim_timeout_s)
    claimable = or_(
        ReviewItemRow.status == "open",
        and_(ReviewItemRow.status == "claimed", ReviewItemRow.claimed_at < stale),  # type: ignore[operator]
    )
    where = [claimable, ReviewItemRow.expires_at > now]  # type: ignore[operator]
    if queue:
        where.append(ReviewItemRow.queue == queue)
    with Session(engine) as s:
        if engine.dialect.name == "postgresql":
            pick = (
                select(ReviewItemRow.id)
                .where(*where)
                .order_by(ReviewItemRow.created_at)  # type: ignore[arg-type]
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            item_id = s.execute(pick).scalar_one_or_none()
            if item_id is None:
                s.rollback()
                return None
            s.execute(
                update(ReviewItemRow)
                .where(ReviewItemRow.id == item_id)  # type: ignore[arg-type]
                .values(status="claimed", claimed_by=reviewer, claimed_at=now)
            )
        else:
            sub = (
                select(ReviewItemRow.id)
                .where(*where)
                .order_by(ReviewItemRow.created_at)  # type: ignore[arg-type]
                .limit(1)
                .scalar_subquery()
            )
            res = s.execute(
                update(ReviewItemRow)
                .where(ReviewItemRow.id == sub)  # type: ignore[arg-type]
                .values(status="claimed", claimed_by=reviewer, claimed_at=now)
                .returning(ReviewItemRow.id)
            )
            item_id = res.scalar_one_or_none()
            if item_id is None:
                s.rollback()
                return None
        s.commit()
        return s.get(ReviewItemRow, item_id)


def record_outcome(
    engine: Engine, item_id: str, reviewer: str, outcome: str, note: str, *, admin: bool = False
) -> ReviewItemRow | None:
    """Resolve a claimed item. None: no such item. ReviewConflict: not this reviewer's claim."""
    now = utcnow()
    with Session(engine) as s:
        cond = [ReviewItemRow.id == item_id, ReviewItemRow.status == "claimed"]
        if not admin:
            cond.append(ReviewItemRow.claimed_by == reviewer)
        res = s.execute(
            update(ReviewItemRow)
            .where(*cond)  # type: ignore[arg-type]
            .values(
                status="resolved", outcome=outcome, note=note, resolved_by=reviewer, resolved_at=now
            )
        )
        if res.rowcount == 0:  # type: ignore[attr-defined]
            exists = s.get(ReviewItemRow, item_id)
            s.rollback()
            if exists is None:
                return None
            raise ReviewConflict(
                "item is already resolved"
                if exists.status == "resolved"
                else "item is not claimed by you; claim it with GET /v1/reviews/next"
            )
        s.commit()
        return s.get(ReviewItemRow, item_id)


def get_item(engine: Engine, item_id: str) -> ReviewItemRow | None:
    with Session(engine) as s:
        return s.get(ReviewItemRow, item_id)


def stats(engine: Engine) -> list[dict[str, Any]]:
    """Per policy version: opened, open, confirmed, overturned (legitimate), overturn rate."""
    with Session(engine) as s:
        rows = s.execute(
            select(
                ReviewItemRow.policy_id,
                ReviewItemRow.policy_version,
                ReviewItemRow.status,
                ReviewItemRow.outcome,
                func.count(),
            ).group_by(
                ReviewItemRow.policy_id,
                ReviewItemRow.policy_version,
                ReviewItemRow.status,
                ReviewItemRow.outcome,
            )
        ).all()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for pid, version, status, outcome, n in rows:
        st = out.setdefault(
            (pid, version),
            {
                "policy": pid,
                "version": version,
                "opened": 0,
                "pending": 0,
                "confirmed_attack": 0,
                "legitimate": 0,
                "inconclusive": 0,
            },
        )
        st["opened"] += n
        if status == "resolved" and outcome in OUTCOMES:
            st[outcome] += n
        else:
            st["pending"] += n
    for st in out.values():
        resolved = st["confirmed_attack"] + st["legitimate"] + st["inconclusive"]
        st["resolved"] = resolved
        # An overturn: a human found the session legitimate after the engine flagged it.
        st["overturn_rate"] = round(st["legitimate"] / resolved, 4) if resolved else None
    return sorted(out.values(), key=lambda d: (d["policy"], d["version"]))


def purge(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        res = conn.execute(
            ReviewItemRow.__table__.delete().where(ReviewItemRow.expires_at <= now)  # type: ignore[attr-defined,operator]
        )
        return res.rowcount or 0


__all__ = [
    "OUTCOMES",
    "ReviewConflict",
    "claim_next",
    "record_outcome",
    "review_row",
    "stats",
]
