"""The store on both backends: migrations, the log, retention purge, the review queue
(two real processes claiming from one PostgreSQL queue)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, select

from engine.core.models import DecisionRequest
from engine.service.runtime import Runtime
from engine.store import reviews
from engine.store.db import alembic_config, current_revision, make_engine, migrate
from engine.store.events import REDACTED_SUMMARY
from engine.store.retention import purge
from engine.store.tables import DecisionEventRow, ReviewItemRow, metadata
from tests.engine.service.conftest import ROOT, make_settings, request_body, review_body


def test_migrations_match_the_tables(any_db: str) -> None:
    engine = make_engine(any_db)
    migrate(engine)
    migrate(engine)  # idempotent
    # The newest migration, whichever it is: each adds a table of its own.
    assert (
        current_revision(engine)
        == ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    )
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def _decide_all(db_url: str, bodies: list[dict], at: datetime | None = None) -> list[str]:
    """Decide through the runtime (the same path the API takes), optionally at a past time."""
    rt = Runtime(make_settings(db_url))
    rt.start()
    try:

        async def run() -> list[str]:
            out = []
            for b in bodies:
                d, _ = await rt.decide(DecisionRequest.model_validate(b))
                out.append(d.decision_id)
            return out

        ids = asyncio.run(run())
    finally:
        rt.stop()
    if at is not None:  # age the events as if decided at ``at``
        engine = make_engine(db_url)
        with Session(engine) as s:
            for row in s.exec(select(DecisionEventRow)).all():
                delta = row.expires_at - row.decided_at
                row.decided_at = at
                row.expires_at = at + delta
                row.redact_at = at + timedelta(days=90)
                s.add(row)
            for item in s.exec(select(ReviewItemRow)).all():
                item.expires_at = at + timedelta(days=180)
                s.add(item)
            s.commit()
        engine.dispose()
    return ids


def test_retention_purge_field_by_field(any_db: str) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    [kept, _reviewed] = _decide_all(any_db, [request_body(), review_body()], at=t0)
    engine = make_engine(any_db)

    def rows() -> dict[str, DecisionEventRow]:
        with Session(engine) as s:
            return {r.decision_id: r for r in s.exec(select(DecisionEventRow)).all()}

    # Day 89: nothing is due.
    report = purge(engine, t0 + timedelta(days=89))
    assert (report.events_deleted, report.events_redacted) == (0, 0)
    assert "device" in rows()[kept].input
    assert "device" in json.dumps(rows()[kept].result["reasons"]).lower()
    with Session(engine) as s:
        assert "device" in s.exec(select(ReviewItemRow)).one().checklist["context"]
    # Day 91: device posture (90 days) is stripped; the rest (180 days) stays.
    report = purge(engine, t0 + timedelta(days=91))
    assert report.events_redacted == 2
    row = rows()[kept]
    assert "device" not in row.input
    assert row.input["identity"]["assurance"] == "low"
    assert row.signals and row.signals[0]["name"] == "audio.synthetic_voice"
    assert "device.posture" not in row.retention
    assert row.redact_at is None
    # The stored decision no longer explains itself with what was purged.
    assert row.result["summary"] == REDACTED_SUMMARY
    assert all(r["kind"] not in ("rule", "adjustment") for r in row.result["reasons"])
    assert "device" not in json.dumps(row.result["reasons"]).lower()
    assert row.result["action"] == "step_up" and row.result["risk"] > 0
    # ... and neither does the review item opened by the other decision.
    with Session(engine) as s:
        [item] = s.exec(select(ReviewItemRow)).all()
    assert "device" not in item.checklist["context"]
    assert item.checklist["recommended_next_step"] == REDACTED_SUMMARY
    assert "device" not in json.dumps(item.checklist["what_tripped"]).lower()
    # Day 181: whole events and their review items are gone.
    report = purge(engine, t0 + timedelta(days=181))
    assert report.events_deleted == 2
    assert report.reviews_deleted == 1
    assert rows() == {}
    engine.dispose()


def test_purge_cli(sqlite_url: str) -> None:
    _decide_all(sqlite_url, [request_body()], at=datetime(2020, 1, 1, tzinfo=UTC))
    out = subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", "store", "purge",
         "--database-url", sqlite_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("purged: 1 events deleted")


def test_periodic_purge_runs_in_serve(sqlite_url: str) -> None:
    _decide_all(sqlite_url, [request_body()], at=datetime(2020, 1, 1, tzinfo=UTC))
    rt = Runtime(make_settings(sqlite_url, purge_interval_s=0.05))
    rt.start()

    async def run() -> None:
        rt.start_purger()
        await asyncio.sleep(0.5)
        rt.stop_purger()

    try:
        asyncio.run(run())
    finally:
        rt.stop()
    engine = make_engine(sqlite_url)
    with Session(engine) as s:
        assert s.exec(select(DecisionEventRow)).all() == []
    engine.dispose()


_CLAIMER = textwrap.dedent(
    """
    import json, sys
    from engine.store.db import make_engine
    from engine.store.reviews import claim_next
    engine = make_engine(sys.argv[1])
    with engine.connect():  # connected and imported: only the claims remain
        pass
    print("ready", flush=True)
    sys.stdin.readline()  # the barrier: both start claiming together
    got = []
    while (item := claim_next(engine, sys.argv[2])) is not None:
        got.append(item.id)
    print(json.dumps(got), flush=True)
    """
)


def test_two_processes_never_claim_the_same_item(pg_clean: str) -> None:
    """Two replicas' worth of reviewers drain one PostgreSQL queue concurrently."""
    n = 60
    _decide_all(pg_clean, [review_body(f"r{i}") for i in range(n)])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, pg_clean, who],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("replica-a", "replica-b")
    ]
    for p in procs:  # both are connected before either claims anything
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    for p in procs:  # release both, then collect
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(__import__("json").loads(out))
    a, b = results
    # The property: no item is claimed twice, and every item is claimed exactly once.
    # (How the items split between the two depends on scheduling: either may get none.)
    assert len(set(a)) == len(a) and len(set(b)) == len(b), "an item was claimed twice"
    assert not set(a) & set(b), "an item was handed to two reviewers"
    assert len(a) + len(b) == n
    engine = make_engine(pg_clean)
    with Session(engine) as s:
        rows = s.exec(select(ReviewItemRow)).all()
    engine.dispose()
    assert {r.status for r in rows} == {"claimed"}
    assert {r.id: r.claimed_by for r in rows} == {
        **{i: "replica-a" for i in a},
        **{i: "replica-b" for i in b},
    }


def test_skip_locked_does_not_wait_for_a_locked_item(pg_clean: str) -> None:
    """While one transaction holds the oldest item, another claims the next one at once."""
    _decide_all(pg_clean, [review_body("first"), review_body("second")])
    engine = make_engine(pg_clean)
    with engine.connect() as conn:
        tx = conn.begin()
        held = conn.exec_driver_sql(
            "SELECT id FROM review_items ORDER BY created_at LIMIT 1 FOR UPDATE"
        ).scalar_one()
        got = reviews.claim_next(engine, "other")
        tx.rollback()
    engine.dispose()
    assert got is not None and got.id != held


@pytest.mark.parametrize("stale", [False, True])
def test_stale_claims_return_to_the_queue(sqlite_url: str, stale: bool) -> None:
    _decide_all(sqlite_url, [review_body()])
    engine = make_engine(sqlite_url)
    first = reviews.claim_next(engine, "a")
    assert first is not None
    again = reviews.claim_next(engine, "b", claim_timeout_s=0 if stale else 3600)
    engine.dispose()
    assert (again is not None and again.id == first.id) if stale else again is None


def test_fast_event_row_equals_the_domain_event_adapted(tmp_path) -> None:
    """The serving path's row is exactly what adapting a DecisionEventV1 gives."""
    import json

    from engine.core.decide import decide
    from engine.policy.repository import PolicyRepository
    from engine.store.events import (
        RetentionPlan,
        adapt_event_to_row,
        build_event,
        event_row,
        retention_map,
        utcnow,
    )
    from tests.engine.service.conftest import POLICIES

    policy = PolicyRepository(POLICIES).get("support-password-reset")
    df = policy.dataflow
    plan = RetentionPlan.from_days(
        retention_map({f: df.retention_days_for(f) for f in df.retained_fields()})
    )
    request = DecisionRequest.model_validate(review_body())
    now = utcnow()
    decision = decide(request, policy, now=now)
    kw = {"time": now, "request_id": "r1", "service_us": 42}
    fast = event_row(request, decision, plan, result_json=decision.model_dump_json(), **kw)
    slow = adapt_event_to_row(build_event(request, decision, plan, **kw))
    assert json.loads(fast.pop("result")) == slow.pop("result")
    assert fast == slow
