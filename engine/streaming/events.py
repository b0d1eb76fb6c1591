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

A third part lets ``PUT /v1/sessions/{id}/context`` land on any replica:

- **the control channel** ``liveguard_session_control``: a replica that does not hold the
  session reads its owner from the directory and NOTIFYs it the validated context update
  with a request id; the owner applies it through the same path as a local update and
  NOTIFYs the decision back (in parts, a payload being < 8000 bytes) under that
  id; the asking replica waits ``live_forward_timeout_s`` at most (504 past it). Every
  message names the replica it is for, and each ignores the others' (the channel is
  database-wide). Trust: the caller was authorized (role ``decide``) by the replica it
  reached; the owner trusts the message because it came through the database, and
  PostgreSQL lets any role that can connect to the database NOTIFY (no table privilege
  needed), so the boundary is the database's: it must be liveguard's alone, which is also
  what keeps its decision log and keys safe. What a forged message can do is bounded by
  the update's model, re-validated by the owner: exactly what a ``decide`` key holder can
  do. Context values are never logged.

Privacy: an event carries exactly what the local feed shows (action, summary, risk,
decision id, policy) and nothing the policy could not see; the row holding the latest one
is deleted when the call ends or its replica's rows expire.

Over ~400 lines on purpose: ``PgSessionBus`` is one listener connection with its
directory rows, refresh, expiry, fan-out and the control channel's requests and answers;
they share the one connection and its reconnect, and forwarding reads the directory, so
they stay in one class beside the local bus they stand in for.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
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
#: Forwarded context updates and their answers, between replicas (see the docstring).
CONTROL_CHANNEL = "liveguard_session_control"
#: Context updates this replica forwarded and still waits for; past it: 503.
MAX_FORWARDS = 256
#: Forwarded updates being applied here for other replicas at once; past it: answered busy.
MAX_SERVED = 64
#: A forwarded update's decision travels back as base64 in parts of this many characters
#: (each answer's payload stays well below the limit), at most MAX_PARTS of them.
PART_CHARS = 6_000
MAX_PARTS = 16

#: The registry's way to apply a forwarded update: (session id, update as JSON data) →
#: the decision as JSON text; a LiveguardError is relayed to the asking replica.
ContextHandler = Callable[[str, dict[str, Any]], Awaitable[str]]

#: One item on a follower's queue: an event, or None when the feed has ended.
Event = dict[str, Any] | None


class TooManyFollowers(LiveguardError):
    code = "too_many_subscribers"
    http_status = 429


class OwnerTimeout(LiveguardError):
    """The replica holding the session did not answer a forwarded update in time."""

    code = "owner_timeout"
    http_status = 504


class ForwardTooLarge(LiveguardError):
    code = "payload_too_large"
    http_status = 413


class ForwardUnavailable(LiveguardError):
    """A forwarded update could not be sent (the database, or too many waiting)."""

    code = "forward_unavailable"
    http_status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": "1"}


class Relayed(LiveguardError):
    """The owning replica's refusal of a forwarded update, with its code and status.

    Where the owner's message speaks of "this replica" (a session that ended there, a busy
    owner) the caller, who asked another replica, is told whose answer it is. A busy owner's
    429/503 keeps its advice to retry."""

    def __init__(self, code: str, status: int, message: str) -> None:
        if "this replica" in message:
            message = f"the replica streaming this session answered: {message}"
        super().__init__(message)
        self.code, self.http_status = code, status
        if status in (429, 503):
            self.headers = {"Retry-After": "1"}


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

    def serve_context(self, handler: ContextHandler) -> None:
        """How this replica applies updates forwarded to it by other replicas."""
        ...

    async def forward_context(
        self, session_id: str, update: dict[str, Any], timeout_s: float
    ) -> str | None:
        """The decision (JSON) of the replica the session streams on, after it applied
        ``update``; None if it streams on no other replica."""
        ...


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

    def serve_context(self, handler: ContextHandler) -> None:
        return None

    async def forward_context(
        self, session_id: str, update: dict[str, Any], timeout_s: float
    ) -> str | None:
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


_NOTIFY = "SELECT pg_notify(%(ch)s, %(payload)s)"


@dataclass
class _Waiting:
    """A forwarded update's answer being received: from ``owner``, in ``parts``."""

    owner: str
    future: asyncio.Future[tuple[str, Any]]
    parts: dict[int, str] = field(default_factory=dict)


def context_request(
    qid: str, replica: str, owner: str, session_id: str, update: dict[str, Any]
) -> str:
    """The NOTIFY payload forwarding ``update`` to ``owner``. The update's model bounds
    every field (the one unbounded integer is cut at 4300 digits by the JSON parsers), so
    it fits; were it ever too large it is refused whole, never cut: a partial context
    would be decided as if it were complete."""
    note = {"t": "ctx", "q": qid, "r": replica, "to": owner, "s": session_id, "u": update}
    payload = json.dumps(note, separators=(",", ":"))
    size = len(payload.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise ForwardTooLarge(
            f"session {session_id!r} streams on another replica and this update is too "
            f"large to forward there ({size} bytes encoded, at most {MAX_PAYLOAD_BYTES})"
        )
    return payload


def _err(code: str, status: int, message: str) -> dict[str, Any]:
    return {"err": {"code": code, "status": status, "message": message[:1000]}}


def answer_parts(decision_json: str) -> list[str]:
    """The decision in base64 parts of PART_CHARS (ValueError past MAX_PARTS)."""
    text = base64.b64encode(decision_json.encode()).decode()
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    if len(parts) > MAX_PARTS:
        raise ValueError(f"a decision of {len(decision_json)} bytes")
    return parts


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
        self._handler: ContextHandler | None = None
        self._waiting: dict[str, _Waiting] = {}  # request id -> the answer awaited here
        self._serving: set[asyncio.Task[None]] = set()
        self.forwards = Counter(
            "liveguard_live_context_forwards_total",
            "Context updates for sessions streamed elsewhere: sent (answered, timeout, "
            "failed) and served here for other replicas (served, busy).",
            ["outcome"],
            registry=self.registry,
        )
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
            for t in [*self._tasks, *self._serving]:
                t.cancel()
        for t in [*self._tasks, *self._serving]:
            with contextlib.suppress(BaseException):
                await t
        for fs in self._follows.values():
            for f in fs:
                f.end()
        for w in self._waiting.values():
            if not w.future.done():
                w.future.set_exception(ForwardUnavailable("this replica is shutting down"))
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
                    await conn.execute(f"LISTEN {CONTROL_CHANNEL}")
                    self.listening.set()
                    await self._catch_up()  # what was notified while nobody listened
                    async for note in conn.notifies():
                        if note.channel == CONTROL_CHANNEL:
                            self._control(note.payload)
                        else:
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

    # --- context updates for sessions streamed elsewhere -----------------------------------

    def serve_context(self, handler: ContextHandler) -> None:
        self._handler = handler

    async def _forwarding(self, sql: str, params: Any, refusal: str) -> list[Any]:
        """A store call of a forward; failing, the forward is counted failed and refused
        with ``refusal`` and the exception's type (never its text, which may carry the
        payload)."""
        try:
            return await self._execute(sql, params)
        except Exception as exc:
            self.forwards.labels("failed").inc()
            raise ForwardUnavailable(f"{refusal} ({type(exc).__name__})") from None

    async def forward_context(
        self, session_id: str, update: dict[str, Any], timeout_s: float
    ) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        rows = await self._forwarding(
            _READ,
            {"ids": [session_id], "ttl": self.ttl_s},
            f"cannot tell which replica streams session {session_id!r}: the store is unavailable",
        )
        if not rows or rows[0][1] == self.replica_id:
            return None  # streaming nowhere (or ended here meanwhile): unknown
        owner = rows[0][1]
        if len(self._waiting) >= MAX_FORWARDS:
            self.forwards.labels("failed").inc()
            raise ForwardUnavailable(f"{MAX_FORWARDS} forwarded updates are waiting already")
        qid = secrets.token_hex(8)
        payload = context_request(qid, self.replica_id, owner, session_id, update)
        waiting = _Waiting(owner, loop.create_future())
        self._waiting[qid] = waiting
        try:
            await self._forwarding(
                _NOTIFY,
                {"ch": CONTROL_CHANNEL, "payload": payload},
                f"cannot forward the update to the replica streaming session {session_id!r}",
            )
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    kind, body = await waiting.future
            except TimeoutError:
                self.forwards.labels("timeout").inc()
                log.warning("live.context_forward_timeout", session=session_id, owner=owner)
                raise OwnerTimeout(
                    f"session {session_id!r} streams on another replica, which did not "
                    f"answer within {timeout_s:g} s (live_forward_timeout_s); the update "
                    "may or may not have been applied there"
                ) from None
        finally:
            self._waiting.pop(qid, None)
        self.forwards.labels("answered").inc()
        if kind == "err":
            raise Relayed(str(body["code"]), int(body["status"]), str(body["message"]))
        return str(body)

    def _control(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            kind, to = note["t"], note["to"]
        except (ValueError, KeyError, TypeError):
            return
        if to != self.replica_id:
            return  # another replica's (or another store's on this database)
        if kind == "ctx":
            self._serve(note)
        elif kind == "ans":
            self._answered(note)

    def _answered(self, note: dict[str, Any]) -> None:
        waiting = self._waiting.get(str(note.get("q")))
        if waiting is None or waiting.future.done() or note.get("r") != waiting.owner:
            return  # late (timed out), or not from the replica asked
        try:
            if "err" in note:
                err = note["err"]
                status = int(err["status"])
                body = {
                    "code": str(err["code"])[:64],
                    "status": status if 400 <= status <= 599 else 502,
                    "message": str(err["message"])[:1000],
                }
                waiting.future.set_result(("err", body))
                return
            n, i = int(note["n"]), int(note["i"])
            if not (0 < n <= MAX_PARTS and 0 <= i < n):
                return
            waiting.parts[i] = str(note["d"])
            if len(waiting.parts) == n:
                text = "".join(waiting.parts[k] for k in range(n))
                waiting.future.set_result(("ok", base64.b64decode(text, validate=True).decode()))
        except (KeyError, TypeError, ValueError, binascii.Error):
            return

    def _serve(self, note: dict[str, Any]) -> None:
        # Not authenticated beyond the database: any role that can connect to it may
        # NOTIFY (the same trust boundary as the store itself, see the module docstring).
        # The caller was authorized (role decide) where the PUT landed; the update is
        # validated again by its model before it is applied, and only to a session here.
        try:
            qid, requester, sid, update = str(note["q"]), str(note["r"]), str(note["s"]), note["u"]
        except (KeyError, TypeError):
            return
        if not isinstance(update, dict):
            return
        if self._handler is None or len(self._serving) >= MAX_SERVED:
            self.forwards.labels("busy").inc()
            err = _err("busy", 503, f"the replica streaming session {sid!r} is busy; retry later")
            task = asyncio.create_task(self._answer(qid, requester, sid, [err]))
        else:
            task = asyncio.create_task(self._apply(qid, requester, sid, update))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _apply(self, qid: str, requester: str, sid: str, update: dict[str, Any]) -> None:
        assert self._handler is not None
        answers: list[dict[str, Any]]
        try:
            decision = await self._handler(sid, update)
        except LiveguardError as exc:  # e.g. the session ended meanwhile: 404 there too
            answers = [_err(exc.code, exc.http_status, exc.message)]
        except Exception as exc:
            log.error("live.context_forward_failed", session=sid, error=type(exc).__name__)
            why = f"the replica streaming session {sid!r} failed to apply the update"
            answers = [_err("internal", 500, why)]
        else:
            self.forwards.labels("served").inc()
            try:
                parts = answer_parts(decision)
                answers = [{"i": i, "n": len(parts), "d": p} for i, p in enumerate(parts)]
            except ValueError as exc:  # applied and logged, but too large to send back
                why = f"session {sid!r} was re-decided, but its decision is too large to forward"
                answers = [_err("decision_too_large", 500, f"{why} ({exc})")]
        await self._answer(qid, requester, sid, answers)

    async def _answer(
        self, qid: str, requester: str, sid: str, answers: list[dict[str, Any]]
    ) -> None:
        head = {"t": "ans", "q": qid, "r": self.replica_id, "to": requester}
        rows = [
            {"ch": CONTROL_CHANNEL, "payload": json.dumps({**head, **a}, separators=(",", ":"))}
            for a in answers
        ]
        try:
            await self._execute(_NOTIFY, rows, many=True)
        except Exception as exc:  # the asking replica times out and says so
            log.warning("live.context_answer_not_sent", session=sid, error=type(exc).__name__)

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
