"""The HTTP protocol ``serve`` runs: uvicorn's httptools protocol, with headers bounded.

uvicorn bounds neither the size nor the time of a request's headers (0.3x–0.5x, read in
``uvicorn/protocols/http/httptools_impl.py``): its only timer is the keep-alive one, armed
after a response and cancelled by any byte received, so a client that sends part of a
request line, or one header a second, keeps its connection (and the parser's buffer)
for as long as it likes. ``h11_max_incomplete_event_size`` caps headers for the h11
protocol only, and uvicorn answers it with 400. This subclass adds both bounds:

- **size**: past ``max_header_bytes`` of request line and headers, 431 and the connection
  is closed (the count includes at most one read's worth of what followed them);
- **time**: a request's headers must be complete within ``header_timeout_s`` of its first
  byte, and a new connection must send a complete request within that time of opening;
  past it, 408 and the connection is closed (closed without an answer when the client
  never sent a byte).

The body's own deadline is the admission middleware's (``engine.api.middleware``): it is
counted from the last header, and answered with the request's id like any other error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from engine.settings import Settings


class FrontDoorProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a header size cap (431) and a header deadline (408)."""

    max_header_bytes: int = Settings.model_fields["max_header_bytes"].default
    header_timeout_s: float = Settings.model_fields["header_timeout_s"].default

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        #: Between a request's first byte (or the connection's opening) and its last header.
        self._in_headers = True
        self._header_bytes = 0
        self._began = False

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

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
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    # --- the bounds ----------------------------------------------------------------------

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
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
        self._disarm()
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
