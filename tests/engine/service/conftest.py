"""Fixtures for the decision service: settings, stores (SQLite and the real PostgreSQL),
API keys, and real ``liveguard serve`` processes on 127.0.0.1.

PostgreSQL tests use a fresh schema per test run (dropped afterwards) in the database at
``LIVEGUARD_TEST_PG_URL`` (default: the CI server at 127.0.0.1:5432/test). When that
server is unreachable the tests fail; they never skip.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.settings import Settings
from engine.store.db import make_engine, migrate
from engine.store.keys import create_key

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
EXAMPLE: dict[str, Any] = json.loads((ROOT / "examples" / "password-reset.json").read_text())
#: The bundled policy the service tests decide with, and its live version (read, not assumed).
PID = "support-password-reset"
LIVE_VERSION: str = __import__("yaml").safe_load((POLICIES / PID / "manifest.yaml").read_text())[
    "version"
]
PG_BASE = os.environ.get("LIVEGUARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def request_body(**changes: Any) -> dict[str, Any]:
    """The example request with top-level sections replaced or merged (dicts merge)."""
    body = copy.deepcopy(EXAMPLE)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(body.get(k), dict):
            body[k] = {**body[k], **v}
        elif v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body


def review_body(session_id: str = "call-review") -> dict[str, Any]:
    """A request the bundled policy sends to review (compromised device rule)."""
    return request_body(
        session={"id": session_id}, device={"posture": "compromised", "new_device": True}
    )


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_conninfo() -> str:
    return PG_BASE.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL to a fresh schema on the real PostgreSQL; fails if unreachable."""
    import psycopg

    schema = f"lgtest_{secrets.token_hex(5)}"
    try:
        with psycopg.connect(_pg_conninfo(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_BASE} is unreachable ({exc}); these tests need it "
            "(set LIVEGUARD_TEST_PG_URL or start the server)",
            pytrace=False,
        )
    base = PG_BASE.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(_pg_conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def pg_clean(pg_url: str) -> str:
    """The PostgreSQL URL with the schema migrated and every table emptied."""
    engine = make_engine(pg_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE decision_events, review_items, shadow_results, api_keys, audit_reads"
        )
    engine.dispose()
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both stores: the embedded default and the shared one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'liveguard.db'}"
    return request.getfixturevalue("pg_clean")


# --- settings, keys, in-process app --------------------------------------------------------


def make_settings(db_url: str, **kw: Any) -> Settings:
    kw.setdefault("policies", POLICIES)
    kw.setdefault("log_format", "json")
    kw.setdefault("log_level", "WARNING")
    kw.setdefault("purge_interval_s", 3600.0)
    # The bundled policies carry no board sign-off (no board key exists in this repository):
    # the service tests serve them under the logged override; test_signoff.py covers the
    # refusal without it.
    kw.setdefault("allow_unsigned", True)
    return Settings(database_url=db_url, **kw)


def make_keys(db_url: str, *roles: str) -> dict[str, str]:
    engine = make_engine(db_url)
    migrate(engine)
    keys = {role: create_key(engine, role, f"test {role}")[1] for role in roles}
    engine.dispose()
    return keys


ALL_ROLES = ("decide", "review", "audit", "admin")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'liveguard.db'}"


@pytest.fixture
def keys(sqlite_url: str) -> dict[str, str]:
    return make_keys(sqlite_url, *ALL_ROLES)


@pytest.fixture
def client(sqlite_url: str, keys: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        yield c


# --- real server processes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``liveguard serve`` in its own process, on 127.0.0.1."""

    def __init__(self, db_url: str, log: Path, *args: str, env: dict[str, str] | None = None):
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.args = args
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Server:
        env = {
            **os.environ,
            "LIVEGUARD_DATABASE_URL": self.db_url,
            "LIVEGUARD_POLICIES": str(POLICIES),
            "LIVEGUARD_LOG_FORMAT": "json",
            "LIVEGUARD_ALLOW_UNSIGNED": "true",  # see make_settings
            **self.env,
        }
        cmd = [
            sys.executable, "-c", "from engine.cli import main; main()",
            "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start real servers; every one is stopped at teardown."""
    started: list[Server] = []

    def start(db_url: str, *args: str, env: dict[str, str] | None = None) -> Server:
        srv = Server(db_url, tmp_path / f"server-{len(started)}.log", *args, env=env)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()
