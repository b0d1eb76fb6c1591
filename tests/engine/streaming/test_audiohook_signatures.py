"""A server with an AudioHook client secret: every upgrade must carry a valid RFC 9421
signature (computed by the test client itself), or it is refused with 401 and the reason,
before the upgrade. The same server holds one session at most (a second is told 429 with
Retry-After), pauses a stream when the detectors are behind real time (the threshold is
0 s here, so every block counts as backlogged) and gives up on a session that does not
open within 1 s or goes silent for 3 s."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.engine.service.conftest import Server, make_keys
from tests.engine.streaming.audiohook_client import (
    COMPONENTS,
    Client,
    config,
    connect,
    frame,
    refused,
    sign,
    upgrade_headers,
)

SECRET = b"liveguard-test-client-secret-32b"
TARGET = "/v1/streams/audiohook"


class Signed:
    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.key = key
        self.url = server.url.replace("http://", "ws://") + TARGET
        self.authority = server.url.removeprefix("http://")

    def headers(self, secret: bytes = SECRET, **kw: Any) -> dict[str, str]:
        h = upgrade_headers(self.key, str(uuid.uuid4()))
        return {
            **h,
            **sign(h, secret=secret, key=self.key, target=TARGET, authority=self.authority, **kw),
        }


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    tmp: Path = tmp_path_factory.mktemp("audiohook-signed")
    url = f"sqlite:///{tmp / 'liveguard.db'}"
    key = make_keys(url, "decide")["decide"]
    env = {
        "LIVEGUARD_AUDIOHOOK_CLIENT_SECRET": base64.b64encode(SECRET).decode(),
        "LIVEGUARD_MAX_LIVE_SESSIONS": "1",
        "LIVEGUARD_AUDIOHOOK_PAUSE_LAG_S": "0",
        "LIVEGUARD_STREAM_START_TIMEOUT_S": "1",
        "LIVEGUARD_STREAM_IDLE_TIMEOUT_S": "3",
    }
    srv = Server(url, tmp / "server.log", env=env)
    srv.start(timeout=60.0)
    yield Signed(srv, key)
    srv.stop()


def reason(s: Signed, headers: dict[str, str]) -> tuple[int, str]:
    status, body, _ = asyncio.run(refused(s.url, headers))
    return status, body["error"]["message"]


async def _open_and_close(s: Signed, headers: dict[str, str]) -> tuple[str, str]:
    sid = headers["Audiohook-Session-Id"]
    ws = await connect(s.url, headers)
    c = Client(ws, sid)
    first = await c.open(custom=config())
    last = await c.close()
    await ws.close()
    return first["type"], last["type"]


def test_a_signed_upgrade_is_admitted(signed: Signed) -> None:
    assert asyncio.run(_open_and_close(signed, signed.headers())) == ("opened", "closed")


def test_an_unsigned_upgrade_is_refused(signed: Signed) -> None:
    h = upgrade_headers(signed.key, str(uuid.uuid4()))
    status, why = reason(signed, h)
    assert status == 401 and why.startswith("unsigned: the Signature and Signature-Input")


def test_a_signature_with_another_secret_is_refused(signed: Signed) -> None:
    status, why = reason(signed, signed.headers(secret=b"not the secret"))
    assert (status, why) == (401, "the signature does not match (wrong client secret, or altered)")


def test_an_altered_header_fails_the_signature(signed: Signed) -> None:
    h = signed.headers()
    h["Audiohook-Correlation-Id"] = str(uuid.uuid4())  # changed after signing
    status, why = reason(signed, h)
    assert (status, why) == (401, "the signature does not match (wrong client secret, or altered)")


def test_an_expired_signature_is_refused(signed: Signed) -> None:
    status, why = reason(signed, signed.headers(created=int(time.time()) - 60))
    assert status == 401 and why.startswith("expired")


def test_a_signature_created_in_the_future_is_refused(signed: Signed) -> None:
    status, why = reason(signed, signed.headers(created=int(time.time()) + 60))
    assert (status, why) == (401, "created lies in the future")


def test_a_signature_must_cover_the_documented_components(signed: Signed) -> None:
    partial = tuple(c for c in COMPONENTS if c != "x-api-key")
    status, why = reason(signed, signed.headers(components=partial))
    assert (status, why) == (401, "the signature does not cover x-api-key")


def test_the_key_id_must_be_the_api_key(signed: Signed) -> None:
    h = upgrade_headers(signed.key, str(uuid.uuid4()))
    h.update(sign(h, secret=SECRET, key="someone-else", target=TARGET, authority=signed.authority))
    status, why = reason(signed, h)
    assert (status, why) == (401, "Signature-Input: keyid does not match X-API-KEY")


def test_a_short_nonce_is_refused(signed: Signed) -> None:
    status, why = reason(signed, signed.headers(nonce="abc"))
    assert status == 401 and why.startswith("Signature-Input: nonce")


def test_a_replayed_nonce_is_refused(signed: Signed) -> None:
    h = signed.headers()
    assert asyncio.run(_open_and_close(signed, h)) == ("opened", "closed")
    status, body, _ = asyncio.run(refused(signed.url, h))  # the very same upgrade again
    assert status == 401
    assert body["error"] == {
        "code": "replayed_nonce",
        "message": "the signature's nonce was used before",
    }


def test_the_client_secret_is_never_logged(signed: Signed) -> None:
    log = signed.server.log.read_text()
    assert base64.b64encode(SECRET).decode() not in log and SECRET.decode() not in log
    assert signed.key not in log
    assert '"event":"audiohook.signatures_required"' in log


async def _busy(s: Signed) -> tuple[int, str | None]:
    first = s.headers()
    ws = await connect(s.url, first)
    c = Client(ws, first["Audiohook-Session-Id"])
    assert (await c.open(custom=config()))["type"] == "opened"
    try:
        status, _, headers = await refused(s.url, s.headers())
    finally:
        await c.close()
        await ws.close()
    return status, headers.get("Retry-After")


def test_past_the_session_limit_the_upgrade_is_told_429_with_retry_after(
    signed: Signed,
) -> None:
    assert asyncio.run(_busy(signed)) == (429, "1")


async def _backlogged(s: Signed) -> list[str]:
    h = s.headers()
    ws = await connect(s.url, h)
    c = Client(ws, h["Audiohook-Session-Id"])
    assert (await c.open(custom=config()))["type"] == "opened"
    block = frame(np.zeros(800), None, "PCMU")
    await c.audio(block, 800)
    await c.audio(block, 800)  # a block reaches the (backlogged) detectors
    seen = [(await c.expect("pause", timeout=15))["type"]]
    await c.send("paused")
    seen.append((await c.expect("resume", timeout=10))["type"])
    await c.send("resumed", {"start": c.position, "discarded": "PT2S"})
    c.samples += 16_000
    seen.append((await c.close())["type"])
    await ws.close()
    return seen


def test_a_backlogged_stream_is_paused_then_resumed(signed: Signed) -> None:
    assert asyncio.run(_backlogged(signed)) == ["pause", "resume", "closed"]
    log = signed.server.log.read_text()
    assert '"event":"audiohook.paused_for_backlog"' in log


async def _silent(s: Signed, open_first: bool) -> dict[str, Any]:
    h = s.headers()
    ws = await connect(s.url, h)
    c = Client(ws, h["Audiohook-Session-Id"])
    if open_first:
        assert (await c.open(custom=config()))["type"] == "opened"
    try:
        return (await c.answer_disconnect())["parameters"]  # type: ignore[no-any-return]
    finally:
        await ws.close()


def test_a_session_that_never_opens_is_given_up(signed: Signed) -> None:
    p = asyncio.run(_silent(signed, open_first=False))
    assert p == {"reason": "error", "info": "408: no open message in time"}


def test_a_silent_session_is_given_up(signed: Signed) -> None:
    p = asyncio.run(_silent(signed, open_first=True))
    assert p == {"reason": "error", "info": "408: no message for 3 s"}
