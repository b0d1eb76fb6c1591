"""Group commit: one writer thread, one transaction per burst of decisions.

A request hands its rows over and waits; the writer takes everything that queued up while
the previous transaction was committing and commits it together. Nothing is answered
before its commit returns, and no extra wait is added to form a batch: under light load a
batch is one decision, under heavy load one fsync serves hundreds.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import structlog
from pydantic_core import to_json
from sqlalchemy import JSON, DateTime, Engine, Table

from engine.store.db import StoreUnavailable
from engine.store.events import RawJSON
from engine.store.tables import DecisionEventRow, ReviewItemRow, ShadowResultRow

log = structlog.get_logger("liveguard.store")

_EVENTS = DecisionEventRow.__table__  # type: ignore[attr-defined]
_REVIEWS = ReviewItemRow.__table__  # type: ignore[attr-defined]
_SHADOWS = ShadowResultRow.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class WriteSet:
    """Everything one decision adds, committed atomically with it."""

    event: dict[str, Any]
    review: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None
    #: Set by ``submit()`` (threads wait on it) or ``write()`` (an event loop's future,
    #: settled on its own loop, one wake-up per batch).
    future: Future[None] | None = None
    waiter: asyncio.Future[None] | None = None


#: Rows per INSERT statement (20-odd columns each: far below every driver's parameter cap).
_CHUNK = 200

#: Pause between background WAL checkpoints (SQLite), while decisions are being committed.
_CHECKPOINT_EVERY_S = 0.05

#: Called after each commit with (batch size, seconds spent committing).
CommitObserver = Callable[[int, float], None]


class GroupCommitWriter:
    def __init__(
        self, engine: Engine, *, batch_max: int = 256, observe: CommitObserver | None = None
    ) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._observe = observe
        self._queue: queue.SimpleQueue[WriteSet | list[WriteSet] | None] = queue.SimpleQueue()
        #: Write sets handed over during the current pass of each event loop, sent to the
        #: writer together at the end of the pass (one queue hand-off and one thread wake-up
        #: per pass, not per decision: each wake-up costs the serving thread the GIL).
        self._pending: dict[asyncio.AbstractEventLoop, list[WriteSet]] = {}
        self._handing_over = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._plans: dict[str, tuple[str, str, Callable[[dict[str, Any]], tuple[Any, ...]]]] = {}
        self._checkpointer: threading.Thread | None = None
        self._committed = threading.Event()
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="liveguard-group-commit", daemon=True
            )
            self._thread.start()
        self.start_checkpointer()

    def start_checkpointer(self) -> None:
        """SQLite: background WAL checkpoints (also used by the writer process)."""
        if self._checkpointer is None and self._engine.dialect.name == "sqlite":
            self._stopping.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="liveguard-wal-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop."""
        with self._handing_over:
            self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._checkpointer is not None:
            self._stopping.set()
            self._committed.set()
            self._checkpointer.join(timeout)
            self._checkpointer = None

    def _checkpoint_loop(self) -> None:
        """SQLite: copy committed WAL frames into the database beside the writer.

        A commit that crosses SQLite's auto-checkpoint size copies every frame not yet
        copied and syncs the database file before it returns: at 1,000 decisions/s that
        made one commit in a few hundred take 100-250 ms, and every decision waiting on it
        waited as long. A PASSIVE checkpoint on its own connection runs concurrently with
        the writer (it never blocks it), so the writer's own auto-checkpoint finds almost
        nothing left to copy. Durability is untouched: commits still fsync the WAL.
        """
        try:
            with self._engine.connect() as conn:
                while not self._stopping.is_set():
                    self._committed.wait()
                    self._committed.clear()
                    if self._stopping.is_set():
                        break
                    try:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        conn.commit()
                    except Exception as exc:  # the writer's own auto-checkpoint still runs
                        log.warning("store.checkpoint_failed", error=type(exc).__name__)
                    self._stopping.wait(_CHECKPOINT_EVERY_S)
        except Exception as exc:
            log.warning("store.checkpointer_stopped", error=type(exc).__name__)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closed

    def submit(self, ws: WriteSet) -> Future[None]:
        fut: Future[None] = Future()
        ws.future = fut
        if self._closed or self._thread is None:
            fut.set_exception(StoreUnavailable("the decision log is not running"))
        else:
            self._queue.put(ws)
        return fut

    async def write(self, ws: WriteSet) -> None:
        """Return once ``ws`` is committed (raise ``StoreUnavailable`` if it cannot be)."""
        if self._closed or self._thread is None:
            raise StoreUnavailable("the decision log is not running")
        loop = asyncio.get_running_loop()
        ws.waiter = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append(ws)
        await ws.waiter

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = self._pending.pop(loop, [])
        if not pending:
            return
        with self._handing_over:  # never behind stop()'s sentinel, where nobody reads
            if not self._closed:
                self._queue.put(pending)
                return
        waiters = [ws.waiter for ws in pending if ws.waiter is not None]
        _resolve(waiters, StoreUnavailable("the decision log is not running"))

    def write_sync(self, ws: WriteSet, timeout: float = 30.0) -> None:
        self.submit(ws).result(timeout)

    # --- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = first if isinstance(first, list) else [first]
            while len(batch) < self._batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                if isinstance(nxt, list):
                    batch.extend(nxt)
                else:
                    batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[WriteSet]) -> None:
        failed = self.commit_batch(batch)
        if not failed:
            _settle(batch, None)
            return
        bad = {id(ws) for ws, _ in failed}
        ok = [ws for ws in batch if id(ws) not in bad]
        if ok:
            _settle(ok, None)
        for ws, exc in failed:
            _settle([ws], exc)

    def commit_batch(self, batch: list[WriteSet]) -> list[tuple[WriteSet, Exception]]:
        """Commit ``batch`` in one transaction; if that fails, retry its rows singly.

        Returns the write sets that could not be committed, each with its error (the
        rest are committed). Used by the writer thread and by the writer process.
        """
        started = perf_counter()
        try:
            self._insert(batch)
        except Exception as exc:
            if len(batch) == 1:
                log.error("store.write_failed", error=type(exc).__name__, detail=str(exc)[:300])
                return [
                    (
                        batch[0],
                        StoreUnavailable(
                            f"the decision could not be logged ({type(exc).__name__})"
                        ),
                    )
                ]
            # One bad row (e.g. a duplicate id) must not fail its neighbours: retry singly.
            failed: list[tuple[WriteSet, Exception]] = []
            for ws in batch:
                failed += self.commit_batch([ws])
            return failed
        if self._observe is not None:
            self._observe(len(batch), perf_counter() - started)
        self._committed.set()
        return []

    def _insert(self, batch: list[WriteSet]) -> None:
        events = [ws.event for ws in batch]
        reviews = [ws.review for ws in batch if ws.review is not None]
        shadows = [ws.shadow for ws in batch if ws.shadow is not None]
        with self._engine.begin() as conn:
            for table, rows in ((_EVENTS, events), (_REVIEWS, reviews), (_SHADOWS, shadows)):
                if not rows:
                    continue
                head, one, encode = self._plan(table)
                # One multi-row INSERT per chunk, not executemany: the driver releases and
                # retakes the GIL around every statement step, and each retake can wait a
                # full switch interval while the event loop runs.
                for i in range(0, len(rows), _CHUNK):
                    chunk = rows[i : i + _CHUNK]
                    params = tuple(v for r in chunk for v in encode(r))
                    conn.exec_driver_sql(head + ", ".join([one] * len(chunk)), params)

    def _plan(self, table: Table) -> tuple[str, str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
        """An INSERT in the driver's own paramstyle and a row encoder, once per table.

        The writer thread holds the GIL while it encodes; going straight to the driver
        (JSON via pydantic-core, times in the store's format) costs a fraction of
        SQLAlchemy's per-row bind processing, and the event loop gets the GIL back sooner.
        """
        cached = self._plans.get(table.name)
        if cached is not None:
            return cached
        dialect = self._engine.dialect
        cols = [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        cols = [c for c in cols if not (c.name == "id" and table.name == "shadow_results")]
        names = ", ".join(c.name for c in cols)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        head = f"INSERT INTO {table.name} ({names}) VALUES "
        one = f"({', '.join([mark] * len(cols))})"
        sqlite = dialect.name == "sqlite"
        encoders: list[Callable[[Any], Any]] = []
        for c in cols:
            if isinstance(c.type, JSON):
                encoders.append(_json)
            elif isinstance(c.type, DateTime) or isinstance(
                getattr(c.type, "impl", None), DateTime
            ):
                encoders.append(_sqlite_time if sqlite else _pg_time)
            else:
                encoders.append(_same)
        keys = [c.name for c in cols]

        def encode(row: dict[str, Any]) -> tuple[Any, ...]:
            return tuple(enc(row.get(k)) for enc, k in zip(encoders, keys, strict=True))

        self._plans[table.name] = (head, one, encode)
        return head, one, encode


def _same(v: Any) -> Any:
    return v


def _json(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, RawJSON):
        return str(v)
    return to_json(v).decode()


def _sqlite_time(v: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME text form (UTC): reads and range queries stay consistent.
    if v is None:
        return None
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_time(v: datetime | None) -> datetime | None:
    return None if v is None else v.astimezone(UTC)


def _settle(batch: list[WriteSet], exc: Exception | None) -> None:
    """Resolve every waiter of a batch: one cross-thread wake-up per event loop, not per
    decision (each wake-up is a syscall and a context switch on the serving thread)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for ws in batch:
        if ws.waiter is not None:
            by_loop.setdefault(ws.waiter.get_loop(), []).append(ws.waiter)
        elif ws.future is not None and not ws.future.done():
            if exc is None:
                ws.future.set_result(None)
            else:
                ws.future.set_exception(exc)
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, waiters, exc)


def _resolve(waiters: list[asyncio.Future[None]], exc: Exception | None) -> None:
    for w in waiters:
        if not w.done():
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(exc)
