"""Pure ASGI middleware (no per-request task or body copy beyond what each job needs).

On the wire, outermost first:

- ``RequestIdMiddleware``: a request id (the caller's ``X-Request-ID`` if sane, else new)
  bound to structlog's context and echoed on the response.
- ``AdmissionMiddleware``: what a request must get through before it may take a decision
  slot. It authenticates from the headers alone (401/403 before a byte of body is read),
  then reads the body bounded in size (413) and time (408), counted in a gate of its own
  (503 past ``max_receiving``). A client that is slow, or sends a body and never finishes
  it, or has no key, holds no decision slot: at most a receiving slot, for at most the
  body timeout.
- ``InFlightLimitMiddleware``: at most N admitted requests in the app; past it, 503 with
  ``Retry-After`` right away instead of an unbounded queue.

Headers are bounded before any of this runs, by the HTTP protocol (``engine.api.protocol``:
header size → 431, header time → 408 or a closed connection).

Slightly over ~400 lines on purpose: the three middlewares share the gates, the refusal
answers and the body-deadline sweep, and their order on the wire is the design.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from time import monotonic
from typing import Any

import structlog

from engine.service.ids import random_hex

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
#: Never refused for load: probes must see the truth about a busy service.
UNLIMITED = ("/health", "/metrics")
#: Served without a key: the probes and the API's own documentation.
PUBLIC = frozenset((*UNLIMITED, "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"))
_CLOSE = (b"connection", b"close")


def is_event_stream(scope: Scope) -> bool:
    """A live session's event stream (SSE) stays open for the whole call: it is bounded
    by the session's subscriber limit, not by a decision slot it would hold for minutes."""
    path: str = scope["path"]
    return (
        path.endswith("/events")
        and path.startswith("/v1/sessions/")
        and scope.get("method") == "GET"
    )


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        on_response: Callable[[str, int], None] | None = None,
        on_refused: Callable[[Scope, str, int], None] | None = None,
    ) -> None:
        self.app = app
        self.on_response = on_response
        #: Called for every 401 and 403, whichever layer refused (front door or route),
        #: while the request id is still bound: probing leaves a trace.
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                cand = v.decode("latin-1")
                rid = cand if _REQUEST_ID.match(cand) else None
                break
        rid = rid or random_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        header = (b"x-request-id", rid.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The route template, not the raw path: ids must not explode label cardinality.
            route = getattr(scope.get("route"), "path", "unmatched")
            if self.on_refused is not None and status in (401, 403):
                self.on_refused(scope, route, status)
            structlog.contextvars.clear_contextvars()
            if self.on_response is not None:
                self.on_response(route, status)


class Gate:
    """A count of requests one bound applies to (shared by every chain of one app).

    It remembers when it last refused someone, so ``/health`` can say the service is
    saturated while it is refusing work, not only at the instant it is full.
    """

    def __init__(self, limit: int, name: str = "in flight") -> None:
        self.limit = limit
        self.name = name
        self.count = 0  # one event loop: no lock needed
        self.refused_at = float("-inf")

    def try_enter(self) -> bool:
        if self.count >= self.limit:
            self.refused_at = monotonic()
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1

    def saturated(self, window_s: float) -> bool:
        """Full now, or refused someone within the last ``window_s`` seconds."""
        return self.count >= self.limit or monotonic() - self.refused_at < window_s


async def _overloaded(send: Send, gate: Gate, retry_after: bytes, close: bool, what: str) -> None:
    headers = [(b"retry-after", retry_after)]
    if close:
        headers.append(_CLOSE)
    await send_error(
        send,
        503,
        "overloaded",
        f"too many {what} ({gate.limit}); retry after the indicated delay",
        headers,
    )


class InFlightLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int | None = None,
        gate: Gate | None = None,
        retry_after_s: int = 1,
        on_reject: Callable[[], None] | None = None,
    ) -> None:
        if gate is None:
            if limit is None:
                raise TypeError("InFlightLimitMiddleware needs a limit or a gate")
            gate = Gate(limit)
        self.app = app
        self.gate = gate
        self.retry_after = str(retry_after_s).encode()
        self.on_reject = on_reject

    @property
    def in_flight(self) -> int:
        return self.gate.count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED or is_event_stream(scope):
            await self.app(scope, receive, send)
            return
        gate = self.gate
        if not gate.try_enter():
            if self.on_reject:
                self.on_reject()
            await _overloaded(send, gate, self.retry_after, False, "requests in flight")
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.leave()


#: Authenticates a request from its scope (headers) or raises the refusal (401/403).
Authenticate = Callable[[Scope], Awaitable[None]]
#: Answers a refusal raised by ``Authenticate`` (an ASGI app for that one response).
Refusal = Callable[[Scope, Exception], ASGIApp]


class AdmissionMiddleware:
    """Authenticate, then receive the body in full, bounded; only then call the app.

    ``authenticate`` sees the headers only. A refusal it raises (one of ``refusals``) is
    answered at once, with ``Connection: close`` when a body may still be coming: the
    connection is not kept for a client that is still sending. The body is then read in
    full, at most ``max_bytes`` (413) within ``body_timeout_s`` of the headers (408,
    connection closed), inside the receiving gate (503 past its bound). The app gets the
    complete body as one message: whatever it does next, it never waits on the client.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticate | None,
        refusals: tuple[type[Exception], ...] = (),
        refusal: Refusal | None = None,
        gate: Gate,
        max_bytes: int,
        body_timeout_s: float,
        retry_after_s: int = 1,
        on_reject: Callable[[], None] | None = None,
        on_slow: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.refusals = refusals
        self.refusal = refusal
        self.gate = gate
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s
        self.deadlines = Deadlines(body_timeout_s)
        self.retry_after = str(retry_after_s).encode()
        self.on_reject = on_reject
        self.on_slow = on_slow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    await send_error(send, 400, "bad_request", "invalid Content-Length", [_CLOSE])
                    return
            elif k == b"transfer-encoding":
                chunked = True
        pending = chunked or bool(length)
        path = scope["path"]
        limited = path not in UNLIMITED
        if limited and not self.gate.try_enter():
            if self.on_reject:
                self.on_reject()
            await _overloaded(send, self.gate, self.retry_after, pending, "requests being received")
            return
        try:
            if self.authenticate is not None and path not in PUBLIC:
                try:
                    await self.authenticate(scope)
                except self.refusals as exc:
                    assert self.refusal is not None
                    await self.refusal(scope, exc)(scope, receive, _closing(send, pending))
                    return
            if length is not None and length > self.max_bytes:
                await self._too_large(send)
                return
            deadline = self.deadlines.start()
            try:
                message = await self._receive_body(receive)
            except asyncio.CancelledError:
                if not deadline.expired or _still_cancelled():
                    raise
                if self.on_slow:
                    self.on_slow()
                await send_error(
                    send,
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {self.body_timeout_s:g} s",
                    [_CLOSE],
                )
                return
            finally:
                deadline.task = None  # done: the sweep leaves this task alone
            if message is None:
                await self._too_large(send)
                return
        finally:
            if limited:
                self.gate.leave()
        if message["type"] != "http.request":  # the client went away: nobody to answer
            return
        await self.app(scope, _replay(message, receive), send)

    async def _receive_body(self, receive: Receive) -> Message | None:
        """The whole body as one ``http.request`` message (or the disconnect that came
        instead); None past ``max_bytes``. Cancelled past the body timeout (``Deadlines``)."""
        message = await receive()
        if message["type"] != "http.request":
            return message
        chunks = [message.get("body", b"")]
        seen = len(chunks[0])
        if seen > self.max_bytes:
            return None
        if not message.get("more_body", False):
            return message
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def _too_large(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "body_too_large",
            f"request body exceeds the limit of {self.max_bytes} bytes",
            [_CLOSE],
        )


class _Deadline:
    __slots__ = ("at", "expired", "task")

    def __init__(self, at: float, task: asyncio.Task[Any] | None) -> None:
        self.at = at
        self.task = task  # None once the guarded await is over
        self.expired = False


class Deadlines:
    """One timeout for many awaits, with one timer for all of them.

    ``asyncio.timeout`` arms and cancels a timer per request: about half of the admission
    middleware's cost per request, measured on the development machine (~5 of ~10 µs). Every body read has the same timeout, so deadlines come in arrival order: a
    queue, and one sweep at most every ``granularity_s`` that cancels the tasks whose
    deadline passed. A deadline fires up to ``granularity_s`` late. The task that was
    cancelled sees ``CancelledError`` with its ``_Deadline.expired`` set.
    """

    def __init__(self, timeout_s: float, granularity_s: float = 0.05) -> None:
        self.timeout_s = timeout_s
        self.granularity_s = granularity_s
        self._queue: deque[_Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> _Deadline:
        """A deadline ``timeout_s`` from now for the current task; set its ``task`` to
        None when the guarded await is over."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run apps in several): start afresh
            self._loop, self._queue, self._timer = loop, deque(), None
        deadline = _Deadline(loop.time() + self.timeout_s, asyncio.current_task())
        self._queue.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(loop.time() + self.granularity_s, self._sweep)
        return deadline

    def _sweep(self) -> None:
        assert self._loop is not None
        self._timer = None
        now = self._loop.time()
        queue = self._queue
        while queue and (queue[0].at <= now or queue[0].task is None):
            deadline = queue.popleft()
            if deadline.task is not None:
                deadline.expired = True
                deadline.task.cancel()
                deadline.task = None
        if queue:
            # Again soon, not at the head's deadline: finished reads leave the queue
            # within ``granularity_s``, or, behind a slower one still reading, when that one
            # ends or expires (so the queue holds at most rate × timeout entries).
            self._timer = self._loop.call_at(now + self.granularity_s, self._sweep)


def _still_cancelled() -> bool:
    """Take back our own cancellation of the current task; True if another one remains."""
    task = asyncio.current_task()
    return task is not None and task.uncancel() > 0


def _closing(send: Send, close: bool) -> Send:
    """``send`` adding ``Connection: close`` to the response when a body may be unread."""
    if not close:
        return send

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), _CLOSE]
        await send(message)

    return closing


def _replay(first: Message, receive: Receive) -> Receive:
    """The body already read, then the connection's own messages (its disconnect)."""
    pending: list[Message] = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
