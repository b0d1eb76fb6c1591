"""Pure ASGI middleware (no per-request task or body copy beyond what each job needs).

- ``RequestIdMiddleware``: a request id (the caller's ``X-Request-ID`` if sane, else new)
  bound to structlog's context and echoed on the response.
- ``InFlightLimitMiddleware``: at most N requests in the app; past it, 503 with
  ``Retry-After`` right away instead of an unbounded queue.
- ``BodyLimitMiddleware``: bodies over the limit get 413 before the app parses them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from engine.runtime import random_hex

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
#: Never refused for load: probes must see the truth about a busy service.
_UNLIMITED = ("/health", "/metrics")


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
        self, app: ASGIApp, *, on_response: Callable[[str, int], None] | None = None
    ) -> None:
        self.app = app
        self.on_response = on_response

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
            structlog.contextvars.clear_contextvars()
            if self.on_response is not None:
                # The route template, not the raw path: ids must not explode label cardinality.
                route = scope.get("route")
                self.on_response(getattr(route, "path", "unmatched"), status)


class InFlightGate:
    """The in-flight count one bound applies to (shared by every chain of one app)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0  # one event loop: no lock needed


class InFlightLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int | None = None,
        gate: InFlightGate | None = None,
        retry_after_s: int = 1,
        on_reject: Callable[[], None] | None = None,
        gauge: Any = None,
    ) -> None:
        if gate is None:
            if limit is None:
                raise TypeError("InFlightLimitMiddleware needs a limit or a gate")
            gate = InFlightGate(limit)
        self.app = app
        self.gate = gate
        self.retry_after = str(retry_after_s).encode()
        self.on_reject = on_reject
        self.gauge = gauge

    @property
    def in_flight(self) -> int:
        return self.gate.in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNLIMITED:
            await self.app(scope, receive, send)
            return
        gate = self.gate
        if gate.in_flight >= gate.limit:
            if self.on_reject:
                self.on_reject()
            await send_error(
                send,
                503,
                "overloaded",
                "too many requests in flight; retry after the indicated delay",
                [(b"retry-after", self.retry_after)],
            )
            return
        gate.in_flight += 1
        if self.gauge is not None:
            self.gauge.set(gate.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            gate.in_flight -= 1
            if self.gauge is not None:
                self.gauge.set(gate.in_flight)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    await send_error(send, 400, "bad_request", "invalid Content-Length")
                    return
                if too_big:
                    await self._reject(send)
                    return
                break
        else:
            # No Content-Length (chunked): read the body here, bounded, then replay it.
            # (Raising from inside the app's read would turn into a generic 400.)
            chunks: list[bytes] = []
            seen = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    await self.app(scope, _replay([message], receive), send)
                    return
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.max_bytes:
                    await self._reject(send)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            await self.app(scope, _replay([body], receive), send)
            return
        await self.app(scope, receive, send)

    async def _reject(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "body_too_large",
            f"request body exceeds the limit of {self.max_bytes} bytes",
        )


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
