"""Bounded in-flight work: past the bound, 503 + Retry-After at once, never a queue."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from engine.api.middleware import InFlightLimitMiddleware
from tests.engine.service.conftest import bearer, make_keys, request_body


def test_in_flight_bound_rejects_with_retry_after() -> None:
    release = asyncio.Event()
    entered = 0

    async def slow_app(scope, receive, send) -> None:  # a stand-in for a busy endpoint
        nonlocal entered
        entered += 1
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    rejected: list[int] = []
    mw = InFlightLimitMiddleware(
        slow_app, limit=2, retry_after_s=3, on_reject=lambda: rejected.append(1)
    )

    async def call(path: str = "/v1/decisions") -> tuple[int, dict[bytes, bytes]]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await mw({"type": "http", "path": path, "headers": []}, receive, send)
        return sent[0]["status"], dict(sent[0]["headers"])

    async def scenario() -> list[tuple[int, dict[bytes, bytes]]]:
        busy = [asyncio.create_task(call()) for _ in range(2)]
        await asyncio.sleep(0.01)
        over = await call()
        health = asyncio.create_task(call("/health"))  # probes are never refused
        await asyncio.sleep(0.01)
        release.set()
        return [over, *await asyncio.gather(*busy), await health]

    over, a, b, health = asyncio.run(scenario())
    assert over[0] == 503 and over[1][b"retry-after"] == b"3"
    assert (a[0], b[0], health[0]) == (200, 200, 200)
    assert rejected == [1]
    assert mw.in_flight == 0


def test_overloaded_server_answers_503_not_a_queue(sqlite_url: str, serve) -> None:
    """A real server with a bound of 1 under 16 concurrent clients sheds load with 503s."""
    keys = make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url, env={"LIVEGUARD_MAX_IN_FLIGHT": "1", "LIVEGUARD_LOG_LEVEL": "WARNING"})
    statuses: list[int] = []
    retry_after: set[str] = set()
    lock = threading.Lock()

    def client(worker: int) -> None:
        with httpx.Client(headers=bearer(keys["decide"]), timeout=10) as c:
            for i in range(15):
                r = c.post(
                    f"{srv.url}/v1/decisions", json=request_body(session={"id": f"{worker}-{i}"})
                )
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 503:
                        retry_after.add(r.headers.get("retry-after", ""))
                        assert r.json()["code"] == "overloaded"

    threads = [threading.Thread(target=client, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) > 0
    assert statuses.count(503) > 0
    assert retry_after == {"1"}
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert "liveguard_overload_rejections_total" in metrics


def _gauge(url: str, name: str) -> float:
    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in fam.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


def test_in_flight_gauge_counts_decisions_being_served(sqlite_url: str, serve) -> None:
    """Three decisions held at their commit (the test holds SQLite's write lock) show as
    liveguard_in_flight 3; once they are answered, 0."""
    keys = make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url)
    lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # writers wait (busy timeout 30 s); readers go on
    statuses: list[int] = []

    def decide(i: int) -> None:
        r = httpx.post(
            f"{srv.url}/v1/decisions",
            json=request_body(session={"id": f"held-{i}"}),
            headers=bearer(keys["decide"]),
            timeout=30,
        )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while (held := _gauge(srv.url, "liveguard_in_flight")) != 3:
            assert time.monotonic() < deadline, f"in-flight gauge stayed at {held}"
            time.sleep(0.1)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    for t in threads:
        t.join(30)
    assert statuses == [200, 200, 200]
    assert _gauge(srv.url, "liveguard_in_flight") == 0
