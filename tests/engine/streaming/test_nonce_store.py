"""The AudioHook nonce store on both backends (the embedded SQLite and the shared
PostgreSQL): a nonce is admitted once, an expired one is purged and frees its room, and
past the bound a new one is refused without taking any room."""

from __future__ import annotations

import secrets
import time

import pytest

from engine.store.db import make_engine, migrate
from engine.store.nonces import NoncesFull, NonceStore
from tests.engine.service.conftest import any_db, pg_clean, pg_url  # noqa: F401

NOW = time.time()


def _store(url: str, max_rows: int) -> NonceStore:
    """An empty nonce table (the PostgreSQL schema is shared by the session's tests)."""
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audiohook_nonces")
    return NonceStore(engine, max_rows)


def _nonce() -> str:
    return secrets.token_urlsafe(18)


def _held(store: NonceStore, now: float) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM audiohook_nonces WHERE valid_until >= ?"
                if store.engine.dialect.name == "sqlite"
                else "SELECT count(*) FROM audiohook_nonces WHERE valid_until >= %s",
                (now,),
            ).scalar_one()
        )


def test_a_nonce_is_admitted_once(any_db: str) -> None:  # noqa: F811
    store, n = _store(any_db, 10), _nonce()
    assert store.admit(n, NOW + 13, NOW) is True
    assert store.admit(n, NOW + 13, NOW + 1) is False


def test_past_the_bound_a_new_nonce_is_refused_without_taking_room(any_db: str) -> None:  # noqa: F811
    store = _store(any_db, 2)
    assert store.admit(_nonce(), NOW + 13, NOW) and store.admit(_nonce(), NOW + 13, NOW)
    refused = _nonce()
    with pytest.raises(NoncesFull, match="2 unexpired nonces are held"):
        store.admit(refused, NOW + 13, NOW)
    assert _held(store, NOW) == 2
    with pytest.raises(NoncesFull):  # not recorded: refused again as full, not as a replay
        store.admit(refused, NOW + 13, NOW)


def test_an_expired_nonce_is_purged_and_frees_its_room(any_db: str) -> None:  # noqa: F811
    store, old = _store(any_db, 1), _nonce()
    assert store.admit(old, NOW + 13, NOW)
    later = NOW + 14  # the first signature has expired
    assert store.admit(_nonce(), later + 13, later) is True
    assert _held(store, 0.0) == 1  # the expired row is gone, not only uncounted
