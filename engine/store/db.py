"""Database engines and schema migrations (alembic, run programmatically).

SQLite is the embedded default: WAL journal and ``synchronous=FULL`` so a committed
decision survives a crash, of the service or of the machine (``synchronous="normal"``
trades the machine's for no fsync per commit). PostgreSQL is for several replicas sharing
one log and queue.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DatabaseError

from engine.core.errors import LiveguardError

MIGRATIONS = Path(__file__).with_name("migrations")
#: Any constant: replicas starting together take turns migrating.
_MIGRATION_LOCK = 0x6C67_0001


class StoreUnavailable(LiveguardError):
    """The decision log cannot be written or read: nothing is acknowledged."""

    code = "store_unavailable"
    http_status = 503
    exit_code = 1


class StoreDamaged(LiveguardError):
    """The store at the configured URL is not the decision log we expect: refuse to start
    rather than answer from (or write over) a damaged or foreign one."""

    code = "store_damaged"
    http_status = 503
    exit_code = 2


#: The tables of the schema; a store holding some but no schema version is not ours.
TABLES = frozenset({"decision_events", "review_items", "shadow_results", "api_keys", "audit_reads"})
_SQLITE_HEADER = b"SQLite format 3\x00"


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we ship)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


#: SQLite ``synchronous`` levels offered (``Settings.sqlite_synchronous``).
SQLITE_SYNCHRONOUS = ("full", "normal")


def make_engine(url: str, *, sqlite_synchronous: str = "full", **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(
                f"sqlite_synchronous: expected one of {SQLITE_SYNCHRONOUS}, "
                f"got {sqlite_synchronous!r}"
            )
        synchronous = sqlite_synchronous.upper()
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        path = sqlite_path(engine)

        @event.listens_for(engine, "do_connect")
        def _private_file(*_args: Any) -> None:
            # Created owner-only (0600) before SQLite creates it with the umask's mode:
            # the log holds personal data. SQLite gives its -wal and -shm files the mode
            # of the database file.
            if path is not None and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 8)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine (None: in memory, or not SQLite)."""
    if not is_sqlite(engine):
        return None
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def prepare_store(engine: Engine) -> None:
    """Check that the store is the decision log expected, then migrate it.

    A new store is created only where none exists (no file, or a database without any of
    our tables). An existing file that is empty, not SQLite, fails SQLite's integrity
    check, holds our tables without a schema version, or carries a schema version this
    liveguard does not know is refused with the reason and what to do: history is never
    silently replaced by an empty log.
    """
    path = sqlite_path(engine)
    if path is not None and path.exists():
        _check_sqlite_file(engine, path)
    _check_schema(engine)
    migrate(engine)


def _check_sqlite_file(engine: Engine, path: Path) -> None:
    where = f"store {path}"
    if not path.is_file():
        raise StoreDamaged(f"{where}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise StoreDamaged(
            f"{where}: the file is empty (0 bytes) — a truncated or damaged decision log? "
            "Restore it from a backup, or move it aside to start a new log."
        )
    with path.open("rb") as f:
        header = f.read(len(_SQLITE_HEADER))
    if header != _SQLITE_HEADER:
        raise StoreDamaged(
            f"{where}: not a SQLite database (unexpected file header); "
            "point LIVEGUARD_DATABASE_URL at the decision log"
        )
    try:
        with engine.connect() as conn:
            rows = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check(5)")]
    except DatabaseError as exc:
        raise StoreDamaged(
            f"{where}: SQLite cannot read it ({_first_line(exc)}); restore it from a backup"
        ) from None
    if rows != ["ok"]:
        raise StoreDamaged(
            f"{where}: fails SQLite's integrity check: {'; '.join(map(str, rows))}; "
            "restore it from a backup"
        )


def _check_schema(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    where = f"store {engine.url.render_as_string()}"
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    except DatabaseError as exc:
        raise StoreDamaged(f"{where}: cannot be read ({_first_line(exc)})") from None
    ours = tables & TABLES
    if "alembic_version" not in tables:
        if ours:
            raise StoreDamaged(
                f"{where}: holds decision-log tables ({', '.join(sorted(ours))}) but no "
                "schema version; restore it from a backup rather than starting over it"
            )
        return  # a new store: nothing of ours here yet
    revision = current_revision(engine)
    known = {
        s.revision for s in ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()
    }
    if revision is None and ours:
        raise StoreDamaged(f"{where}: holds decision-log tables but its schema version is empty")
    if revision is not None and revision not in known:
        raise StoreDamaged(
            f"{where}: schema version {revision!r} is unknown to this liveguard "
            f"(it knows {', '.join(sorted(known))}); a newer release wrote it, or it is "
            "not a decision log"
        )
    missing = TABLES - tables
    if revision is not None and missing:
        raise StoreDamaged(
            f"{where}: schema version {revision} but tables missing: {', '.join(sorted(missing))}"
        )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).splitlines()[0] if str(orig) else type(orig).__name__


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # configparser interpolates '%': URL-encoded options and passwords must be escaped.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run from several replicas at once."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
