"""Database engines and schema migrations (alembic, run programmatically).

SQLite is the embedded default: WAL journal and ``synchronous=FULL`` so a committed
decision survives a crash, of the service or of the machine (``synchronous="normal"``
trades the machine's for no fsync per commit). PostgreSQL is for several replicas sharing
one log and queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from engine.errors import LiveguardError

MIGRATIONS = Path(__file__).with_name("migrations")
#: Any constant: replicas starting together take turns migrating.
_MIGRATION_LOCK = 0x6C67_0001


class StoreUnavailable(LiveguardError):
    """The decision log cannot be written or read: nothing is acknowledged."""

    code = "store_unavailable"
    http_status = 503
    exit_code = 1


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
