"""API keys: random, shown once, stored as sha256 only; one role each.

Keys carry 256 bits of randomness, so a plain sha256 (not a slow password hash) is the
right tool: there is nothing to brute-force, and lookups stay cheap per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

from sqlalchemy import Engine, bindparam, func, select, text
from sqlmodel import Session

from engine.store.events import utcnow
from engine.store.tables import ApiKeyRow

Role = Literal["decide", "review", "audit", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
_KEY = re.compile(r"^lg_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's public id (safe to log) and its role."""

    key_id: str
    role: str

    def allows(self, role: str) -> bool:
        return self.role == role or self.role == "admin"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, role: str, label: str = "") -> tuple[str, str]:
    """Store a new key's hash; return (key_id, key). The key is never stored or shown again."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    key = f"lg_{key_id}_{secrets.token_urlsafe(32)}"
    with Session(engine) as s:
        s.add(
            ApiKeyRow(
                key_id=key_id, key_hash=hash_key(key), role=role, label=label, created_at=utcnow()
            )
        )
        s.commit()
    return key_id, key


_LOOKUP = select(ApiKeyRow.key_hash, ApiKeyRow.role).where(  # type: ignore[call-overload]
    ApiKeyRow.key_id == bindparam("key_id"),
    ApiKeyRow.revoked_at.is_(None),  # type: ignore[union-attr]
)


def key_id_of(key: str | None) -> str | None:
    """The public id inside a well-formed key (safe to log), else None."""
    m = _KEY.match(key or "")
    return m.group(1) if m else None


def resolve_key(engine: Engine, key: str) -> Principal | None:
    """The principal for a presented key, or None (unknown, malformed or revoked).

    Asked of the store on every request (one primary-key lookup), never cached: a revoked
    key stops working at once, on every replica sharing the store.
    """
    m = _KEY.match(key)
    if m is None:
        return None
    with engine.connect() as conn:
        row = conn.execute(_LOOKUP, {"key_id": m.group(1)}).first()
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return Principal(key_id=m.group(1), role=row.role)


class SqliteKeyReader:
    """Key lookups straight from a SQLite log, cheap enough for the event loop.

    A read-only connection per thread in WAL mode never waits on the writer; a lookup is a
    primary-key read of a few microseconds (SQLAlchemy's pool costs ~10x that), so every
    request can be checked against the store and a revocation holds from the next request
    on. A busy store answers ``sqlite3.OperationalError`` within ``busy_ms``: the caller
    then asks through the pool in a thread instead.
    """

    _SQL = "SELECT key_hash, role FROM api_keys WHERE key_id = ? AND revoked_at IS NULL"

    def __init__(self, path: Path, *, busy_ms: int = 20) -> None:
        self.uri = f"file:{path}?mode=ro"
        self.busy_ms = busy_ms
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.uri, uri=True, timeout=self.busy_ms / 1000)
            self._local.conn = conn
        return conn

    def resolve(self, key: str) -> Principal | None:
        m = _KEY.match(key)
        if m is None:
            return None
        row = self._conn().execute(self._SQL, (m.group(1),)).fetchone()
        if row is None or not hmac.compare_digest(row[0], hash_key(key)):
            return None
        return Principal(key_id=m.group(1), role=row[1])


#: PostgreSQL channel on which ``revoke_key`` announces a revoked key id.
REVOKED_CHANNEL = "liveguard_key_revoked"


class PgKeyCache:
    """Verified keys cached per replica, dropped the moment any replica revokes one.

    On PostgreSQL a lookup per request is a network round trip in a thread (~0.3–0.6 ms of
    CPU); instead each replica keeps the keys it verified and listens on
    ``REVOKED_CHANNEL`` (``LISTEN``/``NOTIFY``), which ``revoke_key`` notifies inside the
    revoking transaction. The cache is used only while the listener is connected: when the
    listening connection fails, the cache is cleared and every request asks the store
    again until the listener is back, so a revocation is never missed.
    """

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._verified: dict[str, Principal] = {}
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="key-revocations", daemon=True)

    def start(self, timeout_s: float = 5.0) -> None:
        self._thread.start()
        self._listening.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()

    def get(self, key: str) -> Principal | None:
        if not self._listening.is_set():
            return None
        return self._verified.get(hash_key(key))

    def put(self, key: str, who: Principal) -> None:
        if self._listening.is_set() and len(self._verified) < 10_000:
            self._verified[hash_key(key)] = who

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {REVOKED_CHANNEL}")
                    self._verified.clear()  # nothing verified before LISTEN is trusted
                    self._listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._drop(note.payload)
            except Exception:  # any failure: stop trusting the cache, then reconnect
                self._listening.clear()
                self._verified.clear()
                self._stop.wait(1.0)
        self._listening.clear()

    def _drop(self, key_id: str) -> None:
        for digest, who in list(self._verified.items()):
            if who.key_id == key_id:
                self._verified.pop(digest, None)


def revoke_key(engine: Engine, key_id: str) -> tuple[str, datetime | None] | None:
    """Revoke ``key_id``; returns (role, when it was already revoked or None), or None
    when no such key exists."""
    with Session(engine) as s:
        row = s.get(ApiKeyRow, key_id)
        if row is None:
            return None
        if row.revoked_at is not None:
            return row.role, row.revoked_at
        row.revoked_at = utcnow()
        s.add(row)
        if engine.dialect.name == "postgresql":
            # Delivered to every replica's listener when this transaction commits.
            s.execute(text("SELECT pg_notify(:channel, :key_id)"), {
                "channel": REVOKED_CHANNEL, "key_id": key_id})  # fmt: skip
        s.commit()
        return row.role, None


def count_keys(engine: Engine) -> int:
    with Session(engine) as s:
        stmt = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))  # type: ignore[union-attr]
        return int(s.execute(stmt).scalar_one())


def list_keys(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as s:
        rows = s.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).scalars().all()  # type: ignore[arg-type]
        return [(r.key_id, r.role, r.label) for r in rows if r.revoked_at is None]
