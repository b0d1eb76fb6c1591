"""``liveguard store export``: the decision log as Parquet, minimized as retained.

One row per decision event at or after ``since``: its policy version, action, risk, timing,
the retained input and signals exactly as the log keeps them (JSON text: nothing the data
flow manifest does not retain was ever stored, and nothing is added here), and the review
outcome when a reviewer resolved the item (the ground truth of outcomes analysis). For
replaying history under a candidate policy version, and for users who leave.

Bounded: at most ``limit`` events, read and written in pages; every page read is recorded
in the audit trail like any other read of stored decisions.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, and_, or_, select
from sqlmodel import Session

from engine.store.audit import record_read
from engine.store.events import aware_utc
from engine.store.keys import Principal
from engine.store.tables import DecisionEventRow, ReviewItemRow

__all__ = ["EXPORT_KEY", "MAX_EXPORT", "ExportReport", "export_history"]

MAX_EXPORT = 10_000_000
PAGE = 5_000
EXPORT_KEY = b"liveguard.history"
SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()),
        ("decided_at", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("policy_id", pa.string()),
        ("policy_version", pa.string()),
        ("policy_digest", pa.string()),
        ("policy_engine", pa.string()),
        ("action", pa.string()),
        ("risk", pa.float64()),
        ("degraded", pa.bool_()),
        ("error", pa.string()),
        ("decide_us", pa.int64()),
        ("input", pa.string()),
        ("signals", pa.string()),
        ("reasons", pa.string()),
        ("retention", pa.string()),
        ("review_outcome", pa.string()),
    ]
)


@dataclass(frozen=True)
class ExportReport:
    rows: int
    path: Path
    truncated: bool

    def line(self) -> str:
        more = f" (stopped at --limit {self.rows:,}; more events exist)" if self.truncated else ""
        return f"wrote {self.path}: {self.rows:,} decisions{more}"


def _reason_codes(result: dict | None) -> str:
    return json.dumps([r.get("code") for r in (result or {}).get("reasons", [])])


def export_history(
    engine: Engine,
    output: Path,
    *,
    since: datetime,
    until: datetime | None = None,
    policy: str | None = None,
    limit: int = 1_000_000,
    who: Principal = Principal(key_id="cli", role="admin"),
) -> ExportReport:
    """Write the events at or after ``since`` (and before ``until``) to ``output``."""
    if not 1 <= limit <= MAX_EXPORT:
        raise ValueError(f"--limit: expected 1 to {MAX_EXPORT:,}, got {limit}")
    since = aware_utc(since)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    meta = {
        "since": since.isoformat(),
        "until": until.isoformat() if until else None,
        "policy": policy,
    }
    schema = SCHEMA.with_metadata({EXPORT_KEY: json.dumps(meta)})
    t, i = DecisionEventRow.decided_at, DecisionEventRow.decision_id
    written = 0
    last: tuple[datetime, str] | None = None
    truncated = False
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            while written < limit:
                cond = (
                    t >= since
                    if last is None
                    else or_(t > last[0], and_(t == last[0], i > last[1]))
                )  # type: ignore[operator]
                stmt = (
                    select(DecisionEventRow, ReviewItemRow.outcome)
                    .outerjoin(
                        ReviewItemRow, ReviewItemRow.decision_id == DecisionEventRow.decision_id
                    )
                    .where(cond)
                )
                if until is not None:
                    stmt = stmt.where(t < aware_utc(until))  # type: ignore[operator]
                if policy:
                    stmt = stmt.where(DecisionEventRow.policy_id == policy)
                take = min(PAGE, limit - written)
                stmt = stmt.order_by(t, i).limit(take + 1)  # type: ignore[arg-type]
                with Session(engine) as s:
                    page = s.execute(stmt).all()
                more = len(page) > take
                page = page[:take]
                if not page:
                    break
                record_read(
                    engine, who, f"export:{output.name}", [r.decision_id for r, _ in page], None
                )
                cols: dict[str, list] = {f.name: [] for f in SCHEMA}
                for row, outcome in page:
                    cols["decision_id"].append(row.decision_id)
                    cols["decided_at"].append(aware_utc(row.decided_at))
                    cols["session_id"].append(row.session_id)
                    cols["policy_id"].append(row.policy_id)
                    cols["policy_version"].append(row.policy_version)
                    cols["policy_digest"].append(row.policy_digest)
                    cols["policy_engine"].append(row.policy_engine)
                    cols["action"].append(row.action)
                    cols["risk"].append(row.risk)
                    cols["degraded"].append(row.degraded)
                    cols["error"].append(row.error)
                    cols["decide_us"].append(int((row.timings or {}).get("decide_us", 0)))
                    cols["input"].append(json.dumps(row.input or {}, sort_keys=True))
                    cols["signals"].append(json.dumps(row.signals or [], sort_keys=True))
                    cols["reasons"].append(_reason_codes(row.result))
                    cols["retention"].append(json.dumps(row.retention or {}, sort_keys=True))
                    cols["review_outcome"].append(outcome)
                writer.write_table(pa.table(cols, schema=schema))
                written += len(page)
                last_row = page[-1][0]
                last = (aware_utc(last_row.decided_at), last_row.decision_id)
                if not more:
                    break
                truncated = written >= limit
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportReport(written, output, truncated)
