"""Session events across replicas: an agent's feed follows a call wherever it streams.

``GET /v1/sessions/{id}/events`` may land on a replica other than the one the call's
WebSocket reached. With one replica (SQLite, the default) the session registry's own
subscribers are all there is (``LocalBus``). With several replicas on one PostgreSQL,
``PgSessionBus`` adds two things:

- **a session directory**, the ``live_sessions`` table: one row per session streaming
  somewhere (its replica, the sequence number and the latest event of its feed). A replica
  claims the row when a session starts (a session id live on another replica is refused),
  refreshes its rows every third of ``live_presence_ttl_s`` and deletes each at the
  session's end; a row not refreshed for ``live_presence_ttl_s`` (its replica died) is
  expired by any replica, and the followers of that session are told the feed ended.
- **the channel** ``liveguard_session_events`` (``LISTEN``/``NOTIFY``): every event a
  session's local subscribers get is also NOTIFYed, in the same statement that records it
  in the session's row; every replica listens and hands it to its followers of that session.

Why PostgreSQL ``LISTEN``/``NOTIFY`` and not a broker (Redis, NATS and RabbitMQ were all at
hand): several replicas already share one PostgreSQL, and API-key revocations already
travel this way (``engine.store.keys``), so there is nothing new to deploy, secure or watch.
The events fit what ``NOTIFY`` offers: few (a change of action, the final decision: a
handful per call), small (one JSON object, bounded below the 8000-byte payload limit),
wanted only live and only in order per session. ``NOTIFY`` delivers at most once to the
listeners connected at commit time; a follower that misses one (its listener reconnecting)
is brought up to date from the row's ``seq`` and ``last_event`` at the next refresh. A
subscriber never needed the history, only the current state and what follows, which is
what a row plus a notification give.

Privacy: an event carries exactly what the local feed shows (action, summary, risk,
decision id, policy) and nothing the policy could not see; the row holding the latest one
is deleted when the call ends or its replica's rows expire.

Over ~400 lines on purpose: ``PgSessionBus`` is one listener connection with its
directory rows, refresh, expiry and fan-out; they share the one connection and its
reconnect, so they stay in one class beside the local bus they stand in for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter

from engine.core.errors import LiveguardError
from engine.settings import Settings

log = structlog.get_logger("liveguard.live")

#: The channel every replica LISTENs on; NOTIFY reaches all of one PostgreSQL database.
CHANNEL = "liveguard_session_events"
#: PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7_999
#: Events waiting to be written and notified; past it the oldest are dropped (counted).
OUTBOX = 4_096
#: Every statement of the bus is bounded in time; past it the connection is dropped.
STATEMENT_TIMEOUT_S = 5.0

#: One item on a follower's queue: an event, or None when the feed has ended.
Event = dict[str, Any] | None


class TooManyFollowers(LiveguardError):
    code = "too_many_subscribers"
    http_status = 429


def offer(q: asyncio.Queue[Event], item: Event) -> None:
    """Put without waiting: a slow subscriber loses its oldest events, never blocks a call."""
    while True:
        try:
            q.put_nowait(item)
            return
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()


@dataclass(eq=False)
class Follow:
    """A subscriber on this replica to a session streaming on another."""

    session_id: str
    queue: asyncio.Queue[Event]
    owner: str | None = None  # the replica streaming the session, once read
    last_seq: int = 0
    ended: bool = False

    def take(self, seq: int, event: dict[str, Any]) -> None:
        """The event numbered ``seq`` of the session, unless already seen; the final ends it."""
        if self.ended or seq <= self.last_seq:
            return
        self.last_seq = seq
        offer(self.queue, event)
        if event.get("final"):
            self.end()

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            offer(self.queue, None)


class SessionBus(Protocol):
    """What the session registry tells other replicas, and how it follows their sessions."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def claim(self, session_id: str, protocol: str) -> bool:
        """Record that the session streams here; False if it is live on another replica."""
        ...

    def publish(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        """Tell other replicas' followers (never waits: queued, bounded)."""
        ...

    def release(self, session_id: str) -> None:
        """The session ended here (after its final event; never waits)."""
        ...

    async def follow(self, session_id: str, queue_size: int) -> Follow | None:
        """A follower of a session live on another replica, or None if there is none."""
        ...

    def unfollow(self, f: Follow) -> None: ...


class LocalBus:
    """One replica: the registry's subscribers are all there is; nothing to tell anyone."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def claim(self, session_id: str, protocol: str) -> bool:
        return True

    def publish(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        return None

    def release(self, session_id: str) -> None:
        return None

    async def follow(self, session_id: str, queue_size: int) -> Follow | None:
        return None

    def unfollow(self, f: Follow) -> None:
        return None


def envelope(replica: str, session_id: str, seq: int, event: dict[str, Any]) -> str:
    """The NOTIFY payload, below PostgreSQL's limit: every field but the summary is
    bounded by its model; an overlong summary is cut (the decision log has it whole)."""
    body = {"r": replica, "s": session_id, "n": seq, "e": event}
    text = json.dumps(body, separators=(",", ":"))
    over = len(text.encode()) - MAX_PAYLOAD_BYTES
    if over > 0:
        summary = str(event.get("summary") or "").encode()
        cut = summary[: max(0, len(summary) - over - 8)].decode(errors="ignore") + "…"
        body["e"] = {**event, "summary": cut}
        text = json.dumps(body, separators=(",", ":"))
        if len(text.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError("event too large for a NOTIFY payload")
    return text


_CLAIM = """
INSERT INTO live_sessions (session_id, replica_id, protocol, started_at, seen_at, seq)
VALUES (%(s)s, %(r)s, %(p)s, now(), now(), 0)
ON CONFLICT (session_id) DO UPDATE SET replica_id = EXCLUDED.replica_id,
    protocol = EXCLUDED.protocol, started_at = now(), seen_at = now(), seq = 0,
    last_event = NULL
WHERE live_sessions.seen_at < now() - make_interval(secs => %(ttl)s)
   OR live_sessions.replica_id = EXCLUDED.replica_id
RETURNING session_id
"""
# The refresh re-creates a row lost to a failed claim, never takes over another replica's.
_REFRESH = """
INSERT INTO live_sessions (session_id, replica_id, protocol, started_at, seen_at, seq)
VALUES (%(s)s, %(r)s, %(p)s, now(), now(), 0)
ON CONFLICT (session_id) DO UPDATE SET seen_at = now()
WHERE live_sessions.replica_id = EXCLUDED.replica_id
"""
_EXPIRE = "DELETE FROM live_sessions WHERE seen_at < now() - make_interval(secs => %(ttl)s)"
# One statement: the row records the event and the NOTIFY goes out when it commits, so a
# follower that reads the row after registering misses nothing it was not notified of.
_EVENT = """
WITH u AS (
    UPDATE live_sessions SET seq = %(n)s, last_event = %(e)s::json, seen_at = now()
    WHERE session_id = %(s)s AND replica_id = %(r)s
)
SELECT pg_notify(%(ch)s, %(payload)s)
"""
_RELEASE = """
WITH d AS (DELETE FROM live_sessions WHERE session_id = %(s)s AND replica_id = %(r)s)
SELECT pg_notify(%(ch)s, %(payload)s)
"""
_READ = """
SELECT session_id, replica_id, seq, last_event FROM live_sessions
WHERE session_id = ANY(%(ids)s) AND seen_at >= now() - make_interval(secs => %(ttl)s)
"""


@dataclass
class _Outgoing:
    session_id: str
    seq: int = 0
    event: dict[str, Any] | None = None  # None: the release


@dataclass
class PgSessionBus:
    """The directory and the channel on PostgreSQL (see the module docstring)."""

    url: str
    ttl_s: float = 15.0
    max_per_session: int = 8
    max_follows: int = 1_600
    registry: CollectorRegistry | None = None
    replica_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def __post_init__(self) -> None:
        self.url = self.url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._mine: dict[str, str] = {}  # session id -> protocol, streaming here
        self._follows: dict[str, set[Follow]] = {}
        self._outbox: deque[_Outgoing] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()
        self.events = Counter(
            "liveguard_live_bus_events_total",
            "Session events for other replicas: notified, dropped (outbox full), failed.",
            ["outcome"],
            registry=self.registry,
        )

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="session-events-listen"),
            asyncio.create_task(self._write_loop(), name="session-events-write"),
            asyncio.create_task(self._refresh_loop(), name="session-events-refresh"),
        ]
        with contextlib.suppress(TimeoutError):  # not fatal: the loop keeps trying
            await asyncio.wait_for(self.listening.wait(), STATEMENT_TIMEOUT_S)

    async def stop(self) -> None:
        for sid in list(self._mine):
            self.release(sid)
        # The finals and releases of the sessions just ended go out first (bounded).
        for _ in range(int(STATEMENT_TIMEOUT_S / 0.05)):
            if not self._outbox:
                break
            await asyncio.sleep(0.05)
        async with self._lock:  # no statement in flight when its connection closes
            for t in self._tasks:
                t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        for fs in self._follows.values():
            for f in fs:
                f.end()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    # --- the sessions streaming here --------------------------------------------------------

    async def claim(self, session_id: str, protocol: str) -> bool:
        try:
            rows = await self._execute(
                _CLAIM, {"s": session_id, "r": self.replica_id, "p": protocol, "ttl": self.ttl_s}
            )
        except Exception as exc:
            # The call is analysed and decided all the same; only other replicas' feeds
            # miss it until the next refresh writes its row.
            log.warning("live.directory_failed", op="claim", error=type(exc).__name__)
            self._mine[session_id] = protocol
            return True
        if not rows:
            return False
        self._mine[session_id] = protocol
        return True

    def publish(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        self._put(_Outgoing(session_id, seq, event))

    def release(self, session_id: str) -> None:
        if self._mine.pop(session_id, None) is not None:
            self._put(_Outgoing(session_id))

    def _put(self, item: _Outgoing) -> None:
        if len(self._outbox) >= OUTBOX:
            self._outbox.popleft()
            self.events.labels("dropped").inc()
        self._outbox.append(item)
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                item = self._outbox[0]
                try:
                    await self._write(item)
                    self.events.labels("notified").inc()
                except Exception as exc:
                    self.events.labels("failed").inc()
                    log.warning(
                        "live.event_not_sent", session=item.session_id, error=type(exc).__name__
                    )
                if self._outbox and self._outbox[0] is item:
                    self._outbox.popleft()

    async def _write(self, item: _Outgoing) -> None:
        if item.event is None:
            payload = json.dumps({"r": self.replica_id, "s": item.session_id, "end": True})
            params = {"s": item.session_id, "r": self.replica_id, "ch": CHANNEL, "payload": payload}
            await self._execute(_RELEASE, params)
            return
        payload = envelope(self.replica_id, item.session_id, item.seq, item.event)
        event = json.loads(payload)["e"]  # as notified (the summary possibly cut)
        await self._execute(
            _EVENT,
            {
                "s": item.session_id,
                "r": self.replica_id,
                "n": item.seq,
                "e": json.dumps(event),
                "ch": CHANNEL,
                "payload": payload,
            },
        )

    # --- following sessions streamed elsewhere ---------------------------------------------

    async def follow(self, session_id: str, queue_size: int) -> Follow | None:
        followers = self._follows.setdefault(session_id, set())
        if len(followers) >= self.max_per_session:
            raise TooManyFollowers(
                f"session {session_id!r} has {self.max_per_session} subscribers here already"
            )
        if sum(len(fs) for fs in self._follows.values()) >= self.max_follows:
            raise TooManyFollowers(f"this replica follows {self.max_follows} feeds already")
        f = Follow(session_id, asyncio.Queue(maxsize=queue_size))
        # Registered before the read: whatever is notified after the read reaches it, and
        # whatever was notified before is in the row read.
        followers.add(f)
        try:
            rows = await self._execute(_READ, {"ids": [session_id], "ttl": self.ttl_s})
        except BaseException:
            self.unfollow(f)
            raise
        if not rows or rows[0][1] == self.replica_id:
            self.unfollow(f)
            return None
        _, owner, seq, last = rows[0]
        f.owner = owner
        if last is not None:
            # The current state first, as a local subscriber gets it.
            f.take(seq, last if last.get("final") else {**last, "previous_action": None})
        return f

    def unfollow(self, f: Follow) -> None:
        followers = self._follows.get(f.session_id)
        if followers is not None:
            followers.discard(f)
            if not followers:
                del self._follows[f.session_id]

    def _deliver(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            followers = self._follows.get(note["s"], ())
            owner = note["r"]
        except (ValueError, KeyError, TypeError):
            return  # not ours: the channel is database-wide
        for f in list(followers):
            if f.owner != owner:
                continue  # another store's or a stale replica's session of the same id
            if note.get("end"):
                f.end()
            else:
                f.take(int(note["n"]), note["e"])

    async def _listen_loop(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    await self._catch_up()  # what was notified while nobody listened
                    async for note in conn.notifies():
                        self._deliver(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("live.events_listener_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live.directory_failed", op="refresh", error=type(exc).__name__)

    async def _refresh(self) -> None:
        """Our rows refreshed, dead replicas' rows expired, followers caught up or ended."""
        rows = [
            {"s": sid, "r": self.replica_id, "p": protocol} for sid, protocol in self._mine.items()
        ]
        if rows:
            await self._execute(_REFRESH, rows, many=True)
        await self._execute(_EXPIRE, {"ttl": self.ttl_s})
        await self._catch_up()

    async def _catch_up(self) -> None:
        if not self._follows:
            return
        found = {
            sid: (owner, seq, last)
            for sid, owner, seq, last in await self._execute(
                _READ, {"ids": list(self._follows), "ttl": self.ttl_s}
            )
        }
        for sid, followers in list(self._follows.items()):
            row = found.get(sid)
            for f in list(followers):
                if row is None or row[0] != f.owner:
                    f.end()  # ended, or its replica died: the feed is over
                elif row[2] is not None:
                    f.take(row[1], row[2])

    # --- the connection ----------------------------------------------------------------------

    async def _execute(self, sql: str, params: Any, *, many: bool = False) -> list[Any]:
        """One statement on the bus's connection (reconnected once if it failed)."""
        import psycopg

        async with self._lock:
            for attempt in (0, 1):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = await psycopg.AsyncConnection.connect(
                            self.url, autocommit=True, connect_timeout=5
                        )
                    async with asyncio.timeout(STATEMENT_TIMEOUT_S):
                        cur = self._conn.cursor()
                        if many:
                            await cur.executemany(sql, params)
                            return []
                        await cur.execute(sql, params)
                        return list(await cur.fetchall()) if cur.description else []
                except (psycopg.OperationalError, TimeoutError):
                    conn, self._conn = self._conn, None
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    if attempt:
                        raise
        return []  # not reached


def session_bus(settings: Settings, dialect: str, registry: CollectorRegistry | None) -> SessionBus:
    """PostgreSQL: the directory and the channel; otherwise (one replica) the local bus."""
    if dialect != "postgresql":
        return LocalBus()
    return PgSessionBus(
        settings.database_url,
        ttl_s=settings.live_presence_ttl_s,
        max_per_session=settings.sse_max_subscribers,
        max_follows=settings.max_live_sessions * settings.sse_max_subscribers,
        registry=registry,
    )
