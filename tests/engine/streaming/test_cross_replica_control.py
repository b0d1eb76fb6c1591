"""Two real ``liveguard serve`` replicas on one PostgreSQL, for what a load balancer may
send to either: a signed AudioHook upgrade admitted by one replica is refused when it is
replayed to the other (the nonce is in the store), and ``PUT /v1/sessions/{id}/context``
sent to the replica that does not hold the call's WebSocket is forwarded to the one that
does, which re-decides the session and answers through it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text

from engine.store.db import make_engine
from tests.engine.service.conftest import Server, make_keys, pg_url  # noqa: F401
from tests.engine.streaming.audiohook_client import Client, config, connect, sign, upgrade_headers
from tests.engine.streaming.conftest import connected, media, params, silence, start, stop
from tests.engine.streaming.live_server import follow_feed

SECRET = b"liveguard-test-client-secret-32b"
AUDIOHOOK = "/v1/streams/audiohook"
FORWARD_TIMEOUT_S = 1.0  # LIVEGUARD_LIVE_FORWARD_TIMEOUT_S
#: A value of the forwarded context that no log line may carry.
PRIVATE_METHOD = "otp-private-4711"


class Replicas:
    def __init__(self, a: Server, b: Server, keys: dict[str, str], url: str) -> None:
        self.a, self.b, self.keys, self.url = a, b, keys, url

    def put_context(self, srv: Server, session_id: str, body: Any) -> httpx.Response:
        content = body if isinstance(body, str) else json.dumps(body)
        return httpx.put(
            f"{srv.url}/v1/sessions/{session_id}/context",
            headers={
                "Authorization": f"Bearer {self.keys['decide']}",
                "Content-Type": "application/json",
            },
            content=content,
            timeout=15,
        )

    def sql(self, query: str, **args: Any) -> list[Any]:
        engine = make_engine(self.url)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(query), args)
                return list(result.fetchall()) if result.returns_rows else []
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def replicas(
    pg_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    tmp: Path = tmp_path_factory.mktemp("replicas-control")
    keys = make_keys(pg_url, "decide", "review")
    env = {
        "LIVEGUARD_AUDIOHOOK_CLIENT_SECRET": base64.b64encode(SECRET).decode(),
        "LIVEGUARD_LIVE_FORWARD_TIMEOUT_S": str(FORWARD_TIMEOUT_S),
    }
    a = Server(pg_url, tmp / "a.log", env={**env, "LIVEGUARD_LIVE_PRELOAD_DETECTORS": "true"})
    b = Server(pg_url, tmp / "b.log", env=env)
    a.start(timeout=60.0)
    b.start(timeout=60.0)
    yield Replicas(a, b, keys, pg_url)
    a.stop()
    b.stop()


# --- AudioHook: one nonce, one upgrade, whichever replica it reaches -------------------------


def _signed(r: Replicas, authority: str) -> dict[str, str]:
    h = upgrade_headers(r.keys["decide"], str(uuid.uuid4()))
    return {
        **h,
        **sign(h, secret=SECRET, key=r.keys["decide"], target=AUDIOHOOK, authority=authority),
    }


async def _open_and_close(srv: Server, headers: dict[str, str]) -> tuple[str, str]:
    ws = await connect(srv.url.replace("http://", "ws://") + AUDIOHOOK, headers)
    c = Client(ws, headers["Audiohook-Session-Id"])
    first = await c.open(custom=config())
    last = await c.close()
    await ws.close()
    return first["type"], last["type"]


def _upgrade(srv: Server, headers: dict[str, str], authority: str) -> httpx.Response:
    """The WebSocket upgrade request sent to ``srv`` with ``Host: authority``, as a load
    balancer in front of both replicas passes it on (the signature covers @authority)."""
    return httpx.get(
        srv.url + AUDIOHOOK,
        headers={
            **headers,
            "Host": authority,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(uuid.uuid4().bytes).decode(),
        },
        timeout=10,
    )


def test_a_signed_upgrade_admitted_by_one_replica_is_refused_by_the_other(
    replicas: Replicas,
) -> None:
    authority = replicas.a.url.removeprefix("http://")
    h = _signed(replicas, authority)
    assert asyncio.run(_open_and_close(replicas.a, h)) == ("opened", "closed")
    replay = _upgrade(replicas.b, h, authority)
    assert replay.status_code == 401, replay.text
    assert replay.json()["error"] == {
        "code": "replayed_nonce",
        "message": "the signature's nonce was used before",
    }


def test_the_other_replica_admits_a_fresh_signature_for_the_same_authority(
    replicas: Replicas,
) -> None:
    """What the refusal above is not: the relayed Host and the signature are fine there."""
    authority = replicas.a.url.removeprefix("http://")
    resp = _upgrade(replicas.b, _signed(replicas, authority), authority)
    assert resp.status_code == 101, resp.text


# --- context updates reach the replica that streams the call --------------------------------


async def _closed(ws: Any) -> int | None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass
    return ws.close_code  # type: ignore[no-any-return]


async def _call_on_a_context_on_b(r: Replicas) -> dict[str, Any]:
    call, sid = "CA" + "5" * 32, "call-xr-context"
    events: list[tuple[str, dict[str, Any]]] = []
    got: dict[str, Any] = {"events": events, "sid": sid}
    async with websockets.connect(r.a.url.replace("http://", "ws://") + "/v1/streams/twilio") as ws:
        await ws.send(connected())
        await ws.send(start(call, params(r.keys["decide"], session_id=sid)))
        ready = asyncio.Event()
        feed = asyncio.create_task(
            follow_feed(r.a, r.keys["review"], sid, events, ready, ready_on_first_event=True)
        )
        await asyncio.wait_for(ready.wait(), 30)  # the session is open on A
        for i, chunk in enumerate(silence(10), start=1):
            await ws.send(media(i, chunk))
        update = {
            "device": {"posture": "compromised", "new_device": False},
            "identity": {"assurance": "substantial", "method": PRIVATE_METHOD},
        }
        t0 = time.monotonic()
        got["answer"] = await asyncio.to_thread(r.put_context, r.b, sid, update)
        got["answer_s"] = time.monotonic() - t0
        got["invalid"] = await asyncio.to_thread(r.put_context, r.b, sid, {"identity": None})
        await ws.send(stop(call))
        got["close"] = await asyncio.wait_for(_closed(ws), 15)
        await asyncio.wait_for(feed, 15)
    got["logged"] = r.sql(
        "SELECT decision_id, request_id, action FROM decision_events WHERE session_id = :s",
        s=sid,
    )
    return got


@pytest.fixture(scope="module")
def forwarded(replicas: Replicas) -> dict[str, Any]:
    return asyncio.run(_call_on_a_context_on_b(replicas))


def test_a_context_update_on_the_other_replica_is_answered_with_the_new_decision(
    forwarded: dict[str, Any],
) -> None:
    answer = forwarded["answer"]
    assert answer.status_code == 200, answer.text
    d = answer.json()
    assert d["session_id"] == forwarded["sid"] and d["action"] == "review", d
    assert forwarded["answer_s"] < FORWARD_TIMEOUT_S, forwarded["answer_s"]


def test_the_streaming_replica_publishes_the_forwarded_decision(
    forwarded: dict[str, Any],
) -> None:
    decision_id = forwarded["answer"].json()["decision_id"]
    changes = [e for kind, e in forwarded["events"] if kind == "decision"]
    assert [e["action"] for e in changes if e["decision_id"] == decision_id] == ["review"]


def test_the_forwarded_update_is_decided_and_logged_once_by_the_streaming_replica(
    forwarded: dict[str, Any],
) -> None:
    decision_id = forwarded["answer"].json()["decision_id"]
    contexts = [row for row in forwarded["logged"] if row.request_id == "live:context"]
    assert [(row.decision_id, row.action) for row in contexts] == [(decision_id, "review")]


def test_the_final_decision_keeps_the_forwarded_context(forwarded: dict[str, Any]) -> None:
    kinds = [kind for kind, _ in forwarded["events"]]
    assert kinds[-2:] == ["final", "end"], kinds
    assert forwarded["events"][-2][1]["action"] == "review"
    assert forwarded["close"] == 1000


def test_the_streaming_replicas_refusal_of_a_forwarded_update_is_relayed(
    forwarded: dict[str, Any],
) -> None:
    resp = forwarded["invalid"]
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "request_invalid"
    assert resp.json()["message"] == "identity: may not be null (send the whole section)"


def test_no_replica_logs_the_forwarded_context_values(
    replicas: Replicas, forwarded: dict[str, Any]
) -> None:
    assert forwarded["answer"].status_code == 200
    for srv in (replicas.a, replicas.b):
        assert PRIVATE_METHOD not in srv.log.read_text()


def test_a_context_update_for_a_session_streaming_nowhere_is_404(replicas: Replicas) -> None:
    resp = replicas.put_context(replicas.b, "call-xr-nowhere", {"device": {"posture": "known"}})
    assert resp.status_code == 404, resp.text
    assert resp.json()["code"] == "session_unknown"


def test_a_context_update_whose_streaming_replica_does_not_answer_times_out(
    replicas: Replicas,
) -> None:
    # The directory names a replica that no longer answers (killed, its row not yet expired).
    sid = "call-xr-silent-owner"
    replicas.sql(
        "INSERT INTO live_sessions (session_id, replica_id, protocol, started_at, seen_at, seq)"
        " VALUES (:s, 'f00dfeedf00dfeed', 'twilio', now(), now(), 0)",
        s=sid,
    )
    try:
        t0 = time.monotonic()
        resp = replicas.put_context(replicas.b, sid, {"device": {"posture": "known"}})
        waited = time.monotonic() - t0
    finally:
        replicas.sql("DELETE FROM live_sessions WHERE session_id = :s", s=sid)
    assert resp.status_code == 504, resp.text
    body = resp.json()
    assert body["code"] == "owner_timeout" and repr(sid) in body["message"], body
    assert FORWARD_TIMEOUT_S <= waited < FORWARD_TIMEOUT_S + 2, waited
