"""Group commit in a writer thread and in a writer process: same guarantees."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from engine.core.decide import decide
from engine.core.models import DecisionRequest
from engine.service.runtime import Runtime
from engine.store.db import StoreUnavailable, make_engine, migrate
from engine.store.events import RetentionPlan, event_row, retention_map, utcnow
from engine.store.tables import DecisionEventRow
from engine.store.writer import WriteSet
from tests.engine.service.conftest import bearer, make_keys, make_settings, request_body


def _row(rt: Runtime, session: str) -> dict:
    policy = rt.repo.get("support-password-reset")
    df = policy.dataflow
    plan = RetentionPlan.from_days(
        retention_map({f: df.retention_days_for(f) for f in df.retained_fields()})
    )
    request = DecisionRequest.model_validate(request_body(session={"id": session}))
    now = utcnow()
    d = decide(request, policy, now=now)
    return event_row(
        request, d, plan, time=now, request_id=None, service_us=1, result_json=d.model_dump_json()
    )


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_bad_row_fails_alone(any_db: str, writer: str) -> None:
    """A batch with a duplicate id: its neighbours commit, only the duplicate fails."""
    migrate(make_engine(any_db))
    rt = Runtime(make_settings(any_db, writer=writer))
    rt.start()
    try:
        rows = [_row(rt, f"s{i}") for i in range(5)]
        dup = dict(rows[0], session_id="dup")

        async def run() -> list[BaseException | None]:
            sets = [WriteSet(event=r) for r in [*rows, dup]]
            got = await asyncio.gather(
                *(rt.writer.write(ws) for ws in sets), return_exceptions=True
            )
            # The writer keeps working after a failed row.
            await rt.writer.write(WriteSet(event=_row(rt, "after")))
            return got

        results = asyncio.run(run())
    finally:
        rt.stop()
    assert results[:5] == [None] * 5
    assert isinstance(results[5], StoreUnavailable)
    engine = make_engine(any_db)
    with Session(engine) as s:
        stored = s.exec(select(DecisionEventRow.session_id)).all()
    engine.dispose()
    assert sorted(stored) == sorted([f"s{i}" for i in range(5)] + ["after"])


def test_writer_process_stops_cleanly_and_refuses_after(sqlite_url: str) -> None:
    migrate(make_engine(sqlite_url))
    rt = Runtime(make_settings(sqlite_url, writer="process"))
    rt.start()
    assert rt.writer.alive
    proc = rt.writer._proc  # type: ignore[union-attr]
    rt.stop()
    assert proc is not None and proc.returncode == 0
    assert not rt.writer.alive

    async def late() -> None:
        await rt.writer.write(WriteSet(event={}))

    with pytest.raises(StoreUnavailable):
        asyncio.run(late())


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(p.name))
    return out


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def test_writer_process_does_not_outlive_a_killed_server(sqlite_url: str, serve) -> None:
    keys = make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url, env={"LIVEGUARD_WRITER": "process"})
    r = httpx.post(f"{srv.url}/v1/decisions", json=request_body(), headers=bearer(keys["decide"]))
    assert r.status_code == 200
    assert srv.proc is not None
    children = _children(srv.proc.pid)
    assert children, "the server should have a writer process"
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_gone(c) for c in children):
        time.sleep(0.05)
    assert all(_gone(c) for c in children), "the writer process outlived its server"


def _synchronous(url: str, **kwargs: str) -> int:
    engine = make_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
    finally:
        engine.dispose()


def test_sqlite_commits_are_fsynced_by_default(tmp_path: Path) -> None:
    assert _synchronous(f"sqlite:///{tmp_path / 'd.db'}") == 2  # FULL


def test_sqlite_synchronous_normal_is_applied_when_asked(tmp_path: Path) -> None:
    assert _synchronous(f"sqlite:///{tmp_path / 'd.db'}", sqlite_synchronous="normal") == 1


def test_unknown_sqlite_synchronous_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite_synchronous: expected one of"):
        make_engine(f"sqlite:///{tmp_path / 'd.db'}", sqlite_synchronous="off")


def test_settings_refuse_an_unknown_sqlite_synchronous() -> None:
    from pydantic import ValidationError

    from engine.settings import Settings

    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(sqlite_synchronous="off")  # type: ignore[arg-type]


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_runtime_writes_under_the_configured_synchronous(tmp_path: Path, writer: str) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    settings = make_settings(url, writer=writer, sqlite_synchronous="normal")
    rt = Runtime(settings)
    rt.start()
    try:
        with rt.db.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1
        decision, _ = asyncio.run(
            rt.decide(DecisionRequest.model_validate(request_body(session={"id": "s-normal"})))
        )
    finally:
        rt.stop()
    with Session(make_engine(settings.database_url)) as s:
        assert s.get(DecisionEventRow, decision.decision_id) is not None
