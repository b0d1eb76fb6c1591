"""A damaged or foreign store is refused at startup, never silently replaced
(issue 10, point 8); a new SQLite log is private to its owner (point 10)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.service.runtime import Runtime
from engine.store.db import StoreDamaged, alembic_config, make_engine, prepare_store
from tests.engine.service.conftest import ROOT, make_keys, make_settings


def _serve(db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()",
         "serve", "--port", "1", "--database-url", db_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _refused(db_url: str) -> str:
    engine = make_engine(db_url)
    with pytest.raises(StoreDamaged) as exc:
        prepare_store(engine)
    engine.dispose()
    return exc.value.message


def _healthy_store(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "liveguard.db"
    url = f"sqlite:///{path}"
    make_keys(url, "decide")
    return url, path


def test_truncated_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "liveguard.db"
    path.write_bytes(b"")
    assert "empty (0 bytes)" in _refused(f"sqlite:///{path}")
    assert path.stat().st_size == 0  # nothing was created over it


def test_serve_refuses_a_truncated_store_with_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "liveguard.db"
    path.write_bytes(b"")
    out = _serve(f"sqlite:///{path}")
    assert out.returncode == 2, out.stderr
    assert "empty (0 bytes)" in out.stderr
    assert "Traceback" not in out.stderr


def test_garbage_inside_the_file_fails_the_integrity_check(tmp_path: Path) -> None:
    url, path = _healthy_store(tmp_path)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    data = bytearray(path.read_bytes())
    page = 4096
    pages = len(data) // page
    assert pages > 3
    middle = range(page * (pages // 2), page * (pages // 2 + 1))
    data[middle.start : middle.stop] = b"\xde\xad\xbe\xef" * (page // 4)  # one page of garbage
    path.write_bytes(bytes(data))
    message = _refused(url)
    assert "integrity" in message or "cannot read" in message


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "liveguard.db"
    path.write_text("decision_id,action\n1,log\n")
    assert "not a SQLite database" in _refused(f"sqlite:///{path}")


def test_tables_without_a_schema_version_are_refused(tmp_path: Path) -> None:
    url, _ = _healthy_store(tmp_path)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    assert "no schema version" in _refused(url)


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    url, _ = _healthy_store(tmp_path)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    assert "9999_from_the_future" in _refused(url)


def test_runtime_refuses_to_start_on_a_damaged_store(tmp_path: Path) -> None:
    path = tmp_path / "liveguard.db"
    path.write_bytes(b"")
    rt = Runtime(make_settings(f"sqlite:///{path}"))
    with pytest.raises(StoreDamaged):
        rt.start()
    rt.db.dispose()


def test_a_healthy_store_starts_and_keeps_its_history(tmp_path: Path) -> None:
    url, _ = _healthy_store(tmp_path)
    engine = make_engine(url)
    prepare_store(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 1
    engine.dispose()


def test_a_new_sqlite_store_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "liveguard.db"
    engine = make_engine(f"sqlite:///{path}")
    prepare_store(engine)
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    engine.dispose()
    assert mode[path.name] == 0o600
    assert all(m == 0o600 for m in mode.values()), mode  # -wal and -shm too


def test_postgres_tables_without_a_schema_version_are_refused(pg_clean: str) -> None:
    engine = make_engine(pg_clean)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    try:
        with pytest.raises(StoreDamaged) as exc:
            prepare_store(engine)
        assert "no schema version" in exc.value.message
    finally:
        # The session's schema is shared by later tests: put its version back.
        from alembic import command

        command.stamp(alembic_config(engine), "head")
        engine.dispose()
