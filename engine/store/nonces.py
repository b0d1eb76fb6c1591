"""AudioHook signature nonces in the store: a replay is refused on every replica.

A signed AudioHook upgrade stays valid for a few seconds (``engine.streaming.signatures``).
A per-process cache refuses its replay to the same replica only; behind a load balancer
the replay may land on another one. Here each verified nonce is inserted into
``audiohook_nonces`` with ``INSERT … ON CONFLICT``: the primary key makes "first use or
replay" one atomic answer across every replica sharing the store (PostgreSQL), and the
same statement serves the single replica on SQLite.

Bounded: rows whose signature has expired are deleted at each admission, and past
``max_rows`` unexpired nonces a new one is refused (``NoncesFull``) rather than an
unexpired one forgotten, which would reopen its replay window. Only a holder of the
client secret can add rows: the signature is verified before the nonce is recorded.
"""

from __future__ import annotations

import structlog
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.store.tables import AudioHookNonceRow

log = structlog.get_logger("liveguard.store")

_T = AudioHookNonceRow.__table__  # type: ignore[attr-defined]


class NoncesFull(Exception):
    """``max_rows`` unexpired nonces are held: a new signed upgrade must wait."""


class NonceStore:
    def __init__(self, engine: Engine, max_rows: int = 10_000) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    def admit(self, nonce: str, valid_until: float, now: float) -> bool:
        """True the first time ``nonce`` is seen (on any replica), False for a replay.

        Blocking (a database round trip): call it off the event loop. ``NoncesFull`` when
        no room is left; store errors propagate (the caller refuses the upgrade)."""
        self._purge(now)
        stmt = self._dialect.insert(_T).values(nonce=nonce, valid_until=valid_until)
        # An expired row of the same nonce is taken over: its signature can no longer be
        # replayed, and a fresh signature (made with the secret) may reuse the nonce.
        stmt = stmt.on_conflict_do_update(
            index_elements=[_T.c.nonce],
            set_={"valid_until": stmt.excluded.valid_until},
            where=_T.c.valid_until < now,
        ).returning(_T.c.nonce)  # a row back: first use; none: a replay
        with self.engine.begin() as conn:
            if conn.execute(stmt).first() is None:
                return False
            held = conn.execute(
                select(func.count()).select_from(_T).where(_T.c.valid_until >= now)
            ).scalar_one()
            if held > self.max_rows:
                # Rolled back with the transaction: the refused upgrade holds no room.
                raise NoncesFull(f"{self.max_rows} unexpired nonces are held")
        return True

    def _purge(self, now: float) -> None:
        # Its own transaction and best effort: two replicas purging the same rows at once
        # must not fail an admission (what is left is deleted by the next one).
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(_T).where(_T.c.valid_until < now))
        except Exception as exc:
            log.warning("audiohook.nonce_purge_failed", error=type(exc).__name__)
