"""The HTTP protocol ``serve`` runs: uvicorn's httptools protocol, with headers bounded.

uvicorn bounds neither the size nor the time of a request's headers (0.54, as installed;
read in ``uvicorn/protocols/http/httptools_impl.py``): its only timer is the keep-alive one, armed
after a response and cancelled by any byte received, so a client that sends part of a
request line, or one header a second, keeps its connection (and the parser's buffer)
for as long as it likes. ``h11_max_incomplete_event_size`` caps headers for the h11
protocol only, and uvicorn answers it with 400. This subclass adds both bounds:

- **size**: past ``max_header_bytes`` of request line and headers, 431 and the connection
  is closed (the count includes at most one read's worth of what followed them);
- **time**: a request's headers must be complete within ``header_timeout_s`` of its first
  byte, and a new connection must send a complete request within that time of opening;
  past it (checked once a second, or every quarter of a shorter timeout), 408 and the
  connection is closed (closed without an answer when the client never sent a byte).

The body's own deadline is the admission middleware's (``engine.api.middleware``): it is
counted from the last header, and its 408 carries the request's ``X-Request-ID``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from engine.settings import Settings


class FrontDoorProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a header size cap (431) and a header deadline (408).

    The deadline costs no timer per request: a request's start time is noted, and one
    sweep per server (``_Sweeper``: once a second, or every quarter of a shorter timeout)
    cuts off the connections whose headers are overdue, so a deadline fires that much late.
    """

    max_header_bytes: int = Settings.model_fields["max_header_bytes"].default
    header_timeout_s: float = Settings.model_fields["header_timeout_s"].default

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Between a request's first byte (or the connection's opening) and its last header.
        self._in_headers = True
        self._header_since = 0.0
        self._header_bytes = 0
        self._began = False

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_since = self.loop.time()
        _Sweeper.ensure(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_headers or self.transport.is_closing():
            return
        # Headers still incomplete after this read: all of it was header bytes (but for
        # the tail of a previous request in the same read, which only makes us stricter).
        self._header_bytes += len(data)
        if self._header_bytes > self.max_header_bytes:
            self._refuse(
                431,
                "request_header_fields_too_large",
                f"request line and headers exceed {self.max_header_bytes} bytes",
            )

    # --- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._began = True
        self._header_bytes = 0
        self._header_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    # --- the bounds ----------------------------------------------------------------------

    def overdue(self, now: float) -> bool:
        return (
            self._in_headers
            and now - self._header_since > self.header_timeout_s
            and not self.transport.is_closing()
        )

    def timed_out(self) -> None:
        self._in_headers = False
        if self.cycle is not None and not self.cycle.response_complete:
            # A previous request is still being answered: let it finish, then close.
            self.cycle.keep_alive = False
            return
        if not self._began:
            self.transport.close()  # never sent a byte: nobody to answer
            return
        self._refuse(
            408,
            "request_timeout",
            f"the request's headers did not arrive within {self.header_timeout_s:g} s",
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` (our JSON error body) and close, outside the ASGI app."""
        self._in_headers = False
        body = json.dumps({"code": code, "message": message}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class _Sweeper:
    """One timer per server: cuts off its connections whose headers are overdue.

    It walks uvicorn's own set of the server's open connections, and stops when there are
    none (the next connection starts it again).
    """

    def __init__(self, proto: FrontDoorProtocol) -> None:
        self.loop = proto.loop
        self.connections = proto.connections
        self.every_s = min(1.0, max(0.05, proto.header_timeout_s / 4))
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def ensure(cls, proto: FrontDoorProtocol) -> None:
        state = proto.server_state
        sweeper: _Sweeper | None = getattr(state, "_liveguard_sweeper", None)
        if sweeper is None or sweeper.loop is not proto.loop:
            sweeper = cls(proto)
            state._liveguard_sweeper = sweeper  # type: ignore[attr-defined]
        if sweeper.timer is None:
            sweeper.timer = sweeper.loop.call_later(sweeper.every_s, sweeper.sweep)

    def sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        overdue = [
            c for c in self.connections if isinstance(c, FrontDoorProtocol) and c.overdue(now)
        ]
        for conn in overdue:
            conn.timed_out()
        if self.connections:
            self.timer = self.loop.call_later(self.every_s, self.sweep)


def front_door_protocol(settings: Settings) -> type[FrontDoorProtocol]:
    """``FrontDoorProtocol`` with ``settings``' bounds (uvicorn builds one per connection)."""
    return type(
        "FrontDoorProtocol",
        (FrontDoorProtocol,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "header_timeout_s": settings.header_timeout_s,
        },
    )
