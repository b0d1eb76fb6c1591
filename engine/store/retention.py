"""Retention: delete what is past each policy's declared retention, field by field.

Each event carries the retention it was logged under (field → days, from the policy's
data-flow manifest at decision time), so purging needs no policy folder and an old
policy version's promises are kept even after the policy changed. A field kept for fewer
days than the rest is stripped at its own deadline (``redact_at``), and with it the parts
of the stored decision that could derive from it (``redact_result``); the whole event goes
at the longest one (``expires_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, update

from engine.store import excerpts, reviews
from engine.store.events import (
    aware_utc,
    event_signals,
    next_redaction,
    project,
    redact_result,
    utcnow,
)
from engine.store.tables import DecisionEventRow, ReviewItemRow, ShadowResultRow

_BATCH = 500


@dataclass(frozen=True, slots=True)
class PurgeReport:
    events_deleted: int
    events_redacted: int
    reviews_deleted: int
    shadow_deleted: int
    excerpts_deleted: int = 0

    def line(self) -> str:
        return (
            f"purged: {self.events_deleted} events deleted, {self.events_redacted} events "
            f"redacted, {self.reviews_deleted} review items deleted, "
            f"{self.shadow_deleted} shadow results deleted, "
            f"{self.excerpts_deleted} escalated excerpts deleted"
        )


def purge(engine: Engine, now: datetime | None = None) -> PurgeReport:
    now = now or utcnow()
    with engine.begin() as conn:
        deleted = conn.execute(
            delete(DecisionEventRow).where(DecisionEventRow.expires_at <= now)  # type: ignore[arg-type]
        ).rowcount
        shadow = conn.execute(
            delete(ShadowResultRow).where(ShadowResultRow.expires_at <= now)  # type: ignore[arg-type]
        ).rowcount
    review_n = reviews.purge(engine, now)
    # Escalated raw audio goes at its own (short) declared retention, not its event's.
    excerpt_n = excerpts.purge(engine, now)
    return PurgeReport(deleted or 0, _redact(engine, now), review_n, shadow or 0, excerpt_n)


def _redact(engine: Engine, now: datetime) -> int:
    """Strip fields whose own retention ended from events that otherwise live on."""
    count = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(
                    DecisionEventRow.decision_id,
                    DecisionEventRow.decided_at,
                    DecisionEventRow.input,
                    DecisionEventRow.signals,
                    DecisionEventRow.retention,
                    DecisionEventRow.result,
                )
                .where(DecisionEventRow.redact_at <= now)  # type: ignore[operator]
                .limit(_BATCH)
            ).all()
            for decision_id, decided_at, inp, sigs, retention, result in rows:
                t = aware_utc(decided_at)
                keep = {f: d for f, d in (retention or {}).items() if t + timedelta(days=d) > now}
                signals = [
                    s.model_dump(mode="json")
                    for s in event_signals(_as_wire(sigs or []), set(keep))
                ]
                redacted = redact_result(result or {}, set(keep))
                _redact_review(conn, decision_id, redacted, keep)
                conn.execute(
                    update(DecisionEventRow)
                    .where(DecisionEventRow.decision_id == decision_id)  # type: ignore[arg-type]
                    .values(
                        input=project(inp or {}, set(keep)),
                        signals=signals,
                        result=redacted,
                        retention=keep,
                        redact_at=next_redaction(t, keep, now),
                    )
                )
            count += len(rows)
        if len(rows) < _BATCH:
            return count


def _redact_review(
    conn: Any, decision_id: str, result: dict[str, Any], keep: dict[str, int]
) -> None:
    """The event's review item (if any) keeps no more than the event itself."""
    where = ReviewItemRow.decision_id == decision_id  # type: ignore[arg-type]
    found = conn.execute(select(ReviewItemRow.checklist).where(where)).first()
    if found is not None:
        checklist = reviews.redact_checklist(found[0] or {}, result, set(keep))
        conn.execute(update(ReviewItemRow).where(where).values(checklist=checklist))


def _as_wire(stored: list[dict]) -> list[dict]:
    """Stored event signals back to the wire shape ``event_signals`` reads."""
    return [{**s, "detector": f"{s['detector']}@{s['detector_version']}"} for s in stored]
