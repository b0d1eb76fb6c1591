"""Reading stored personal data: every read is itself recorded (who, what, when).

Decision events, review items (their checklists carry the retained context) and shadow
summaries (decision ids and actions) are all read through here or call ``record_read``
before they are returned.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import Engine, and_, insert, or_, select
from sqlmodel import Session

from engine.store.events import DecisionEventV1, adapt_row_to_event, utcnow
from engine.store.keys import Principal
from engine.store.tables import AuditReadRow, DecisionEventRow

log = structlog.get_logger("liveguard.audit")
_AUDIT = AuditReadRow.__table__  # type: ignore[attr-defined]


def record_read(
    engine: Engine,
    who: Principal,
    what: str,
    ids: list[str],
    request_id: str | None,
) -> None:
    # Written before the data is returned: an unrecorded read is not served.
    with engine.begin() as conn:
        conn.execute(
            insert(_AUDIT),
            {
                "at": utcnow(),
                "key_id": who.key_id,
                "role": who.role,
                "request_id": request_id,
                "what": what[:500],
                "decision_ids": ids,
                "count": len(ids),
            },
        )
    log.info("audit.read", key_id=who.key_id, role=who.role, what=what[:200], count=len(ids))


def read_event(
    engine: Engine, decision_id: str, who: Principal, request_id: str | None = None
) -> DecisionEventV1 | None:
    with Session(engine) as s:
        row = s.get(DecisionEventRow, decision_id)
        event = adapt_row_to_event(row) if row is not None else None
    record_read(engine, who, f"decision:{decision_id}", [decision_id] if event else [], request_id)
    return event


def read_events(
    engine: Engine,
    since: datetime,
    who: Principal,
    *,
    after_id: str | None = None,
    policy: str | None = None,
    limit: int = 100,
    request_id: str | None = None,
) -> list[DecisionEventV1]:
    """Events at or after ``since`` in (time, id) order; page on with the last (time, id)."""
    t, i = DecisionEventRow.decided_at, DecisionEventRow.decision_id
    cond = t >= since if after_id is None else or_(t > since, and_(t == since, i > after_id))  # type: ignore[operator]
    stmt = select(DecisionEventRow).where(cond)
    if policy:
        stmt = stmt.where(DecisionEventRow.policy_id == policy)
    stmt = stmt.order_by(t, i).limit(limit)  # type: ignore[arg-type]
    with Session(engine) as s:
        events = [adapt_row_to_event(r) for r in s.execute(stmt).scalars().all()]
    what = f"decisions?since={since.isoformat()}" + (f"&policy={policy}" if policy else "")
    record_read(engine, who, what, [e.decision_id for e in events], request_id)
    return events


def audit_trail(engine: Engine, limit: int = 100) -> list[AuditReadRow]:
    with Session(engine) as s:
        stmt = select(AuditReadRow).order_by(AuditReadRow.id.desc()).limit(limit)  # type: ignore[union-attr]
        return list(s.execute(stmt).scalars().all())
