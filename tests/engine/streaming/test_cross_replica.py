"""Two real ``liveguard serve`` replicas on one PostgreSQL: an agent's event stream on one
replica follows a call streamed (Twilio Media Streams, real-time pace) to the other; a
session id live on one replica is refused on the other; when a replica dies, the feeds
following its sessions end and the session id is free again once its row has expired."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.engine.service.conftest import Server, make_keys, pg_url  # noqa: F401
from tests.engine.streaming.conftest import connected, media, params, silence, start, stop
from tests.engine.streaming.live_server import follow_feed

TTL_S = 2.0  # LIVEGUARD_LIVE_PRESENCE_TTL_S: a dead replica's rows expire fast here
CONTEXT_AT_CHUNK = 110


class Replicas:
    def __init__(self, a: Server, b: Server, keys: dict[str, str], url: str, tmp: Path):
        self.a, self.b, self.keys, self.url, self.tmp = a, b, keys, url, tmp

    @staticmethod
    def ws(srv: Server) -> str:
        return srv.url.replace("http://", "ws://") + "/v1/streams/twilio"


@pytest.fixture(scope="module")
def replicas(
    pg_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("replicas")
    keys = make_keys(pg_url, "decide", "review")
    env = {"LIVEGUARD_LIVE_PRESENCE_TTL_S": str(TTL_S)}
    a = Server(pg_url, tmp / "a.log", env={**env, "LIVEGUARD_LIVE_PRELOAD_DETECTORS": "true"})
    b = Server(pg_url, tmp / "b.log", env=env)
    a.start(timeout=60.0)
    b.start(timeout=60.0)
    yield Replicas(a, b, keys, pg_url, tmp)
    a.stop()
    b.stop()


async def _closed(ws: websockets.ClientConnection) -> tuple[int | None, str | None]:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass
    return ws.close_code, ws.close_reason


async def _call_on_a_followed_on_b(r: Replicas, clip: list[bytes]) -> dict[str, Any]:
    call, sid = "CA" + "7" * 32, "call-xr-1"
    events: list[tuple[str, dict[str, Any]]] = []
    got: dict[str, Any] = {"events": events}
    async with websockets.connect(Replicas.ws(r.a)) as ws:
        await ws.send(connected())
        await ws.send(start(call, params(r.keys["decide"], session_id=sid)))
        ready = asyncio.Event()
        feed = asyncio.create_task(follow_feed(r.b, r.keys["review"], sid, events, ready))
        await asyncio.wait_for(ready.wait(), 15)
        # The same session id on the other replica, while it streams here: refused.
        async with websockets.connect(Replicas.ws(r.b)) as dup:
            await dup.send(connected())
            await dup.send(start("CA" + "8" * 32, params(r.keys["decide"], session_id=sid)))
            got["duplicate"] = await asyncio.wait_for(_closed(dup), 15)
        t0 = time.monotonic()
        for i, chunk in enumerate(clip, start=1):
            await asyncio.sleep(max(0.0, t0 + (i - 1) * 0.02 - time.monotonic()))
            await ws.send(media(i, chunk))
            if i == CONTEXT_AT_CHUNK:  # on replica A, where the call streams
                async with httpx.AsyncClient(timeout=10) as c:
                    resp = await c.put(
                        f"{r.a.url}/v1/sessions/{sid}/context",
                        headers={"Authorization": f"Bearer {r.keys['decide']}"},
                        json={"device": {"posture": "compromised", "new_device": False}},
                    )
                    assert resp.status_code == 200, resp.text
                    got["context_answer"] = resp.json()
        await ws.send(stop(call))
        got["close"] = await asyncio.wait_for(_closed(ws), 15)
        await asyncio.wait_for(feed, 15)
    async with httpx.AsyncClient(timeout=10) as c:  # ended everywhere: nothing to follow
        got["after"] = (
            await c.get(
                f"{r.b.url}/v1/sessions/{sid}/events",
                headers={"Authorization": f"Bearer {r.keys['review']}"},
            )
        ).status_code
    return got


@pytest.fixture(scope="module")
def followed(replicas: Replicas, clip: list[bytes]) -> dict[str, Any]:
    return asyncio.run(_call_on_a_followed_on_b(replicas, clip))


def test_the_other_replica_sees_the_change_of_action_with_its_summary(
    followed: dict[str, Any],
) -> None:
    changes = [e for kind, e in followed["events"] if kind == "decision"]
    to_review = [e for e in changes if e["action"] == "review"]
    assert to_review, followed["events"]
    answer = followed["context_answer"]
    assert to_review[0]["decision_id"] == answer["decision_id"]
    assert to_review[0]["summary"] == answer["summary"]
    assert to_review[0]["previous_action"] not in (None, "review")


def test_the_other_replica_sees_the_final_decision_then_the_end(
    followed: dict[str, Any],
) -> None:
    kinds = [kind for kind, _ in followed["events"]]
    assert kinds[-2:] == ["final", "end"], kinds
    final = followed["events"][-2][1]
    assert final["final"] is True and final["action"] == "review"
    assert followed["close"][0] == 1000
    assert followed["after"] == 404


def test_a_session_id_live_on_one_replica_is_refused_on_the_other(
    followed: dict[str, Any],
) -> None:
    code, reason = followed["duplicate"]
    assert code == 1008
    assert reason is not None and "another replica" in reason


def test_the_events_carry_only_what_the_local_feed_shows(followed: dict[str, Any]) -> None:
    fields = {
        "session_id", "call_id", "action", "previous_action", "summary", "risk",
        "degraded", "decision_id", "decided_at", "policy", "final",
    }  # fmt: skip
    for kind, e in followed["events"]:
        if kind != "end":
            assert set(e) == fields, e


async def _replica_dies(r: Replicas) -> dict[str, Any]:
    env = {"LIVEGUARD_LIVE_PRESENCE_TTL_S": str(TTL_S), "LIVEGUARD_LIVE_PRELOAD_DETECTORS": "true"}
    c = Server(r.url, r.tmp / "c.log", env=env)
    c.start(timeout=60.0)
    call, sid = "CA" + "9" * 32, "call-xr-dies"
    events: list[tuple[str, dict[str, Any]]] = []
    out: dict[str, Any] = {"events": events}
    try:
        async with websockets.connect(Replicas.ws(c)) as ws:
            await ws.send(connected())
            await ws.send(start(call, params(r.keys["decide"], session_id=sid)))
            ready = asyncio.Event()
            # Killed only once the follower on B has seen C's first decision: the feed can
            # open (B's directory knows the session) before that decision is published.
            feed = asyncio.create_task(
                follow_feed(r.b, r.keys["review"], sid, events, ready, ready_on_first_event=True)
            )
            await asyncio.wait_for(ready.wait(), 30)
            for i, chunk in enumerate(silence(10), start=1):
                await ws.send(media(i, chunk))
            c.kill9()  # no final decision, no release: only the expiry tells
            t_killed = time.monotonic()
            await asyncio.wait_for(feed, 4 * TTL_S + 5)
            out["ended_after_s"] = time.monotonic() - t_killed
    finally:
        c.stop()
    # The session id is free again: a new stream of it on B is accepted and decided.
    async with websockets.connect(Replicas.ws(r.b)) as ws:
        await ws.send(connected())
        await ws.send(start(call, params(r.keys["decide"], session_id=sid)))
        for i, chunk in enumerate(silence(60), start=1):
            await ws.send(media(i, chunk))
        await ws.send(stop(call))
        out["again"] = await asyncio.wait_for(_closed(ws), 30)
    return out


def test_when_a_replica_dies_its_followers_end_and_the_session_id_is_free(
    replicas: Replicas,
) -> None:
    out = asyncio.run(_replica_dies(replicas))
    kinds = [k for k, _ in out["events"]]
    assert kinds[0] == "decision" and kinds[-1] == "end", kinds
    assert "final" not in kinds  # the dead replica decided nothing more
    assert out["ended_after_s"] <= 3 * TTL_S, out["ended_after_s"]
    assert out["again"][0] == 1000, out["again"]
