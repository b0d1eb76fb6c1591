"""The front door of a real ``liveguard serve`` on 127.0.0.1, attacked over raw sockets.

Slow and unauthenticated clients must not take the decision budget: a request is
authenticated from its headers before any body is read, headers and body are bounded in
size and time, and what is not admitted yet is counted apart from ``MAX_IN_FLIGHT``.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.engine.service.conftest import bearer, make_keys, request_body

#: Generous: every answer expected here comes within a second or two of its deadline.
_READ_S = 20.0


def _connect(port: int, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=_READ_S)
    if data:
        sock.sendall(data)
    return sock


def _slow_chunked(port: int, path: str, key: str | None) -> socket.socket:
    """Headers and the first chunk of a chunked JSON body that never finishes."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        '8\r\n{"sessio\r\n'
    )
    return _connect(port, head.encode())


def _slow_sized(port: int, path: str, key: str | None) -> socket.socket:
    """Headers announcing a 400-byte body, then 10 bytes of it, then nothing."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        "Content-Type: application/json\r\nContent-Length: 400\r\n\r\n"
        '{"outcome"'
    )
    return _connect(port, head.encode())


def _answer(sock: socket.socket) -> tuple[int | None, bytes, bool]:
    """(status, raw bytes, closed by the server) once the server answers or closes."""
    data = b""
    closed = False
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except TimeoutError:
        pass
    finally:
        sock.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, data, closed


def _json_body(raw: bytes) -> dict:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def test_slow_bodies_do_not_take_the_decision_budget(sqlite_url: str, serve) -> None:
    """Three times MAX_IN_FLIGHT authenticated clients that never finish their body (chunked
    on the decision fast path, Content-Length on a FastAPI route): a real decision still
    gets 200, and each slow client is cut off with 408 and a closed connection."""
    keys = make_keys(sqlite_url, "decide", "review")
    srv = serve(
        sqlite_url,
        env={"LIVEGUARD_MAX_IN_FLIGHT": "4", "LIVEGUARD_BODY_TIMEOUT_S": "3"},
    )
    slow = [_slow_chunked(srv.port, "/v1/decisions", keys["decide"]) for _ in range(6)]
    slow += [_slow_sized(srv.port, "/v1/reviews/item-1/outcome", keys["review"]) for _ in range(6)]
    time.sleep(0.5)  # every slow request has reached the app
    r = httpx.post(
        f"{srv.url}/v1/decisions", json=request_body(), headers=bearer(keys["decide"]), timeout=10
    )
    assert r.status_code == 200, r.text
    answers = [_answer(s) for s in slow]
    assert [(status, closed) for status, _, closed in answers] == [(408, True)] * len(slow)
    assert {_json_body(raw)["code"] for _, raw, _ in answers} == {"request_timeout"}


@pytest.mark.parametrize(
    ("opener", "path"),
    [(_slow_chunked, "/v1/decisions"), (_slow_sized, "/v1/reviews/item-1/outcome")],
    ids=["decision-chunked", "route-content-length"],
)
@pytest.mark.parametrize("key", [None, "lg_000000000000_notakey"], ids=["no-key", "unknown-key"])
def test_unauthenticated_request_is_refused_before_its_body_is_read(
    opener, path: str, key: str | None, sqlite_url: str, serve
) -> None:
    """401 while the body is still unsent (the body timeout is far away), connection closed."""
    make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url, env={"LIVEGUARD_BODY_TIMEOUT_S": "60"})
    started = time.monotonic()
    status, raw, closed = _answer(opener(srv.port, path, key))
    assert (status, closed) == (401, True), raw[:300]
    assert _json_body(raw)["code"] == "unauthenticated"
    assert time.monotonic() - started < 15  # not the body timeout's 60 s


def test_headers_that_never_finish_get_408_and_a_closed_connection(sqlite_url: str, serve) -> None:
    make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url, env={"LIVEGUARD_HEADER_TIMEOUT_S": "1"})
    sock = _connect(srv.port, b"POST /v1/decisions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
    status, raw, closed = _answer(sock)
    assert (status, closed) == (408, True), raw[:300]
    assert _json_body(raw)["code"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed(sqlite_url: str, serve) -> None:
    make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url, env={"LIVEGUARD_HEADER_TIMEOUT_S": "1"})
    status, raw, closed = _answer(_connect(srv.port))
    assert (status, raw, closed) == (None, b"", True)


def test_headers_over_the_cap_get_431(sqlite_url: str, serve) -> None:
    make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url, env={"LIVEGUARD_MAX_HEADER_BYTES": "8192"})
    pad = "a" * 9000
    sock = _connect(srv.port, f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {pad}".encode())
    status, raw, closed = _answer(sock)
    assert (status, closed) == (431, True), raw[:300]
    assert _json_body(raw)["code"] == "request_header_fields_too_large"


def test_headers_under_the_cap_are_served(sqlite_url: str, serve) -> None:
    keys = make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url, env={"LIVEGUARD_MAX_HEADER_BYTES": "8192"})
    headers = {**bearer(keys["decide"]), "X-Pad": "a" * 7000}
    r = httpx.post(f"{srv.url}/v1/decisions", json=request_body(), headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def test_health_reports_saturation_while_decisions_are_refused(sqlite_url: str, serve) -> None:
    """Slow clients fill what the service will hold; while it refuses decisions, /health
    says so (503, code overloaded) instead of "ready"; once they are cut off, 200 again."""
    keys = make_keys(sqlite_url, "decide")
    srv = serve(
        sqlite_url,
        env={
            "LIVEGUARD_MAX_IN_FLIGHT": "4",
            "LIVEGUARD_MAX_RECEIVING": "4",
            "LIVEGUARD_BODY_TIMEOUT_S": "3",
        },
    )
    slow = [_slow_chunked(srv.port, "/v1/decisions", keys["decide"]) for _ in range(4)]
    # Wait for the server to have taken all four (not a fixed sleep: a loaded machine may
    # take longer than any guess to read their headers); the body timeout is 3 s away.
    deadline = time.monotonic() + 2.5
    while (health := httpx.get(f"{srv.url}/health", timeout=10)).status_code != 503:
        assert time.monotonic() < deadline, f"never saturated: {health.text}"
        time.sleep(0.05)
    refused = httpx.post(
        f"{srv.url}/v1/decisions", json=request_body(), headers=bearer(keys["decide"]), timeout=10
    )
    assert refused.status_code == 503
    assert health.json()["code"] == "overloaded"
    assert health.headers["retry-after"] == "1"
    for s in slow:
        _answer(s)
    deadline = time.monotonic() + 15
    while httpx.get(f"{srv.url}/health", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "health never recovered"
        time.sleep(0.2)


def test_a_key_that_may_not_decide_is_refused_before_its_body_is_read(
    sqlite_url: str, serve
) -> None:
    keys = make_keys(sqlite_url, "review")
    srv = serve(sqlite_url, env={"LIVEGUARD_BODY_TIMEOUT_S": "60"})
    status, raw, closed = _answer(_slow_chunked(srv.port, "/v1/decisions", keys["review"]))
    assert (status, closed) == (403, True), raw[:300]
    assert _json_body(raw)["code"] == "forbidden"
