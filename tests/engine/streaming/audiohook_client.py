"""A Genesys AudioHook v2 client written from the protocol's specification, not from our
server: the signed upgrade (RFC 9421 signature base computed here, independently of
``engine.streaming.signatures``), the message envelope with both sides' sequence numbers,
binary audio frames with the position counted in samples, and the client's half of the
open, pause and close transactions."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets
from scipy.signal import resample_poly

from detectors.audio_io import load_audio, shared_data_dir
from engine.streaming.twilio import mulaw_encode

ORG = "d7934305-0972-4844-938e-9060eef73d05"
RATE = 8000
COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)


def recording(seconds: float = 3.5) -> np.ndarray:
    """A real recording (the first clip of the shared manifest, VCTK bona fide) at 8 kHz."""
    manifest = shared_data_dir() / "audio" / "manifest.csv"
    if not manifest.is_file():
        raise AssertionError(f"shared data not found at {manifest} (set LIVEGUARD_SHARED_DATA)")
    first = manifest.read_text().splitlines()[1].split(",")[0]
    x16 = load_audio(shared_data_dir() / "audio" / first)[: int(seconds * 16_000)]
    return np.asarray(resample_poly(x16, 1, 2), dtype=np.float64)


def l16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")


def frame(external: np.ndarray, internal: np.ndarray | None, fmt: str) -> bytes:
    """One binary frame: the channels' samples interleaved, external first."""
    if fmt == "PCMU":
        ext = np.frombuffer(mulaw_encode(external), dtype=np.uint8)
        if internal is None:
            return ext.tobytes()
        inn = np.frombuffer(mulaw_encode(internal), dtype=np.uint8)
        return np.stack([ext, inn], axis=1).tobytes()
    if internal is None:
        return l16(external).tobytes()
    return np.stack([l16(external), l16(internal)], axis=1).tobytes()


def media(fmt: str = "PCMU", channels: tuple[str, ...] = ("external",), rate: int = RATE) -> dict:
    return {"type": "audio", "format": fmt, "channels": list(channels), "rate": rate}


def config(**extra: Any) -> dict[str, Any]:
    """customConfig of a password-reset call with consent to media analysis."""
    return {
        "kind": "password_reset",
        "consent_media_analysis": True,
        "identity_assurance": "substantial",
        "device_posture": "managed",
        **extra,
    }


# --- RFC 8941 serialization and the RFC 9421 signature (the client's own) -------------------


def _sf_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sign(
    headers: dict[str, str],
    *,
    secret: bytes,
    key: str,
    target: str,
    authority: str,
    created: int | None = None,
    expires_in: int = 30,
    nonce: str | None = None,
    components: tuple[str, ...] = COMPONENTS,
) -> dict[str, str]:
    """``Signature-Input`` and ``Signature`` for an upgrade with ``headers``."""
    created = int(time.time()) if created is None else created
    nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
    values = {"@request-target": target, "@authority": authority.lower()}
    lower = {k.lower(): v for k, v in headers.items()}
    params = (
        f";keyid={_sf_string(key)};nonce={_sf_string(nonce)};alg={_sf_string('hmac-sha256')}"
        f";created={created};expires={created + expires_in}"
    )
    inner = "(" + " ".join(_sf_string(c) for c in components) + ")" + params
    lines = [f'"{c}": {values[c] if c.startswith("@") else lower[c].strip()}' for c in components]
    lines.append(f'"@signature-params": {inner}')
    mac = hmac.new(secret, "\n".join(lines).encode(), hashlib.sha256).digest()
    return {
        "Signature-Input": f"sig1={inner}",
        "Signature": f"sig1=:{base64.b64encode(mac).decode()}:",
    }


def upgrade_headers(key: str | None, session_id: str, **extra: str) -> dict[str, str]:
    h = {
        "Audiohook-Organization-Id": ORG,
        "Audiohook-Session-Id": session_id,
        "Audiohook-Correlation-Id": str(uuid.uuid4()),
        **extra,
    }
    if key is not None:
        h["X-API-KEY"] = key
    return h


# --- the session -----------------------------------------------------------------------------


@dataclass
class Client:
    """One AudioHook session on an open WebSocket: numbers its messages, tracks the
    server's, and counts the samples it sent as its position."""

    ws: Any
    session_id: str
    seq: int = 0
    serverseq: int = 0
    samples: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def position(self) -> str:
        return f"PT{self.samples / RATE:.3f}S"

    async def send(self, kind: str, parameters: dict[str, Any] | None = None, **over: Any) -> None:
        self.seq += 1
        msg = {
            "version": "2",
            "id": self.session_id,
            "type": kind,
            "seq": self.seq,
            "serverseq": self.serverseq,
            "position": self.position,
            "parameters": parameters or {},
            **over,
        }
        await self.ws.send(json.dumps(msg))

    async def audio(self, data: bytes, samples: int) -> None:
        await self.ws.send(data)
        self.samples += samples

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next server message (text); its ``seq`` must follow the previous one."""
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(raw, bytes):
                continue  # no server audio in AudioHook monitoring
            msg = json.loads(raw)
            assert msg["version"] == "2" and msg["id"] == self.session_id, msg
            assert msg["seq"] == self.serverseq + 1, (msg, self.serverseq)
            assert msg["clientseq"] <= self.seq, msg
            self.serverseq = msg["seq"]
            self.received.append(msg)
            return msg

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """Read until a message of ``kind`` (events on the way are kept in ``received``)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.05, deadline - time.monotonic()))
            if msg["type"] == kind:
                return msg
            assert msg["type"] in ("event", "pause", "resume"), msg

    async def open(
        self,
        offers: list[dict] | None = None,
        custom: dict[str, Any] | None = None,
        conversation: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        await self.send(
            "open",
            {
                "organizationId": ORG,
                "conversationId": conversation or str(uuid.uuid4()),
                "participant": {
                    "id": str(uuid.uuid4()),
                    "ani": "+15551230000",
                    "aniName": "Test Caller",
                    "dnis": "+15559870000",
                },
                "media": offers or [media()],
                "language": "en-US",
                "customConfig": custom if custom is not None else {},
                **extra,
            },
        )
        return await self.recv()

    async def close(self) -> dict[str, Any]:
        """The close transaction: ``close``, then everything up to ``closed``."""
        await self.send("close", {"reason": "end"})
        return await self.expect("closed")

    async def answer_disconnect(self) -> dict[str, Any]:
        """Read the server's ``disconnect``, then run the close transaction it asks for."""
        last = self.received[-1] if self.received else None
        msg = last if last and last["type"] == "disconnect" else await self.expect("disconnect")
        await self.send("close", {"reason": "disconnect"})
        await self.expect("closed")
        return msg


async def connect(url: str, headers: dict[str, str], **kw: Any) -> Any:
    return await websockets.connect(url, additional_headers=headers, max_size=None, **kw)


async def refused(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any], Any]:
    """The HTTP status, JSON body and headers of a refused upgrade."""
    try:
        ws = await connect(url, headers)
    except websockets.InvalidStatus as exc:
        r = exc.response
        return r.status_code, json.loads(r.body or b"{}"), r.headers
    with contextlib.suppress(Exception):
        await ws.close()
    raise AssertionError("the upgrade was accepted")
