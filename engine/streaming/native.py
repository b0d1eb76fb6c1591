"""The native edge protocol (``wss://…/v1/streams/liveguard``), version 1: the wire.

For edge clients and SDKs that can send headers and binary frames: JSON text messages for
control and edge features, binary frames for audio. The README ("Native protocol") is the
specification; this module is its message models and the per-connection state machine,
free of any I/O so the route (``engine.api.routes.native``) only moves bytes.

Text messages are JSON objects with ``"v": 1`` and a ``type``; every field is strictly
typed and unknown fields are refused (this protocol is ours: a client that sends a field
we do not read has a bug worth hearing about). Binary frames are one byte of party id
(declared in ``start.parties``) followed by PCM16 little-endian, 16 kHz, mono samples.

Bad input is answered with an ``error`` message naming its code and field; the connection
and the session go on, except where the error says ``fatal`` (authentication, ``busy``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.streaming.sessions import AGENT, CALLER, ContextUpdate, LiveContext
from signals import Signal

VERSION = 1
SAMPLE_RATE = 16_000
#: One binary frame carries at most one second of audio (plus its one-byte header).
MAX_AUDIO_BYTES = SAMPLE_RATE * 2
#: A text (control or feature) message is at most this many bytes.
MAX_TEXT_BYTES = 32 * 1024
MAX_SIGNALS_PER_MESSAGE = 16
MAX_SERIES_POINTS = 512
#: A connection answering this many errors is closed: a client that only sends bad input
#: gets a bounded amount of our attention.
MAX_ERRORS = 64

#: Feature series the registered detectors read from ``Window.series`` (``detectors``:
#: lipsync reads ``mouth_openness``; face_dynamics the landmark series below).
SERIES_NAMES: frozenset[str] = frozenset(
    {"mouth_openness", "face_present", "eye_aspect_ratio", "landmark_jitter", "head_yaw"}
)


class Code(StrEnum):
    """``error.code`` values (README, "Native protocol")."""

    unauthenticated = "unauthenticated"  # fatal: no or an unknown key
    forbidden = "forbidden"  # fatal: a key without role decide
    busy = "busy"  # fatal: the replica's session limit
    invalid = "invalid"  # not JSON, a wrong or missing field (``field`` names it)
    unknown_type = "unknown_type"
    unsupported_version = "unsupported_version"
    not_started = "not_started"  # anything but start before start
    duplicate_start = "duplicate_start"
    too_large = "too_large"  # a text message or audio frame over its bound
    rate_limited = "rate_limited"  # the message was dropped
    unknown_party = "unknown_party"
    bad_audio = "bad_audio"  # an odd byte count: not PCM16
    raw_media_not_allowed = "raw_media_not_allowed"  # audio to a feature_only_cloud policy
    signal_not_declared = "signal_not_declared"  # ignored: the policy does not read it
    unsupported = "unsupported"  # a feature no registered detector consumes
    session_exists = "session_exists"
    policy = "policy"  # the named policy is unknown or does not apply (``message`` says)
    detectors_unavailable = "detectors_unavailable"
    internal = "internal"


_MSG = ConfigDict(frozen=True, extra="forbid", strict=True)
_ID = r"^[A-Za-z0-9._:\-]{1,128}$"


class Party(BaseModel):
    model_config = _MSG
    id: int = Field(ge=0, le=255)
    role: Literal["caller", "agent"]


class Start(BaseModel):
    model_config = _MSG
    v: Literal[1]
    type: Literal["start"]
    call_id: str = Field(pattern=_ID)
    session_id: str | None = Field(default=None, pattern=_ID)
    policy: str | None = Field(default=None, min_length=1, max_length=200)
    context: LiveContext
    parties: tuple[Party, ...] = Field(
        default=(Party(id=0, role="caller"),), min_length=1, max_length=2
    )


class ContextMessage(BaseModel):
    model_config = _MSG
    v: Literal[1]
    type: Literal["context"]
    update: ContextUpdate


class SignalsMessage(BaseModel):
    model_config = _MSG
    v: Literal[1]
    type: Literal["signals"]
    signals: tuple[Signal, ...] = Field(min_length=1, max_length=MAX_SIGNALS_PER_MESSAGE)


class SeriesMessage(BaseModel):
    model_config = _MSG
    v: Literal[1]
    type: Literal["series"]
    name: str = Field(min_length=1, max_length=64)
    times_ms: tuple[float, ...] = Field(min_length=1, max_length=MAX_SERIES_POINTS)
    values: tuple[float, ...] = Field(min_length=1, max_length=MAX_SERIES_POINTS)


class EmbeddingMessage(BaseModel):
    """Accepted as a shape so the answer can be precise: no registered detector consumes
    edge embeddings (``audio.voice_consistency`` computes its own from the audio)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    v: Literal[1]
    type: Literal["embedding"]


class End(BaseModel):
    model_config = _MSG
    v: Literal[1]
    type: Literal["end"]


Message = Annotated[
    Start | ContextMessage | SignalsMessage | SeriesMessage | EmbeddingMessage | End,
    Field(discriminator="type"),
]
_MESSAGE: TypeAdapter[Any] = TypeAdapter(Message)
TYPES = ("start", "context", "signals", "series", "embedding", "end")


class NativeError(Exception):
    """Bad input: answered with an ``error`` message (closed too when ``fatal``)."""

    def __init__(
        self, code: Code, message: str, field: str | None = None, *, fatal: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message[:300]
        self.field = field
        self.fatal = fatal

    def wire(self) -> dict[str, Any]:
        return error(self.code, self.message, self.field, fatal=self.fatal)


def error(code: Code, message: str, field: str | None = None, *, fatal: bool = False) -> dict:
    return {
        "v": VERSION,
        "type": "error",
        "code": code.value,
        "field": field,
        "message": message[:300],
        "fatal": fatal,
    }


def parse_text(text: str) -> Any:
    """One text message → its model; NativeError naming the code and the field."""
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise NativeError(Code.too_large, f"a text message is at most {MAX_TEXT_BYTES} bytes")
    try:
        raw = json.loads(text)
    except ValueError:
        raise NativeError(Code.invalid, "not a JSON message") from None
    if not isinstance(raw, dict):
        raise NativeError(Code.invalid, "a message must be a JSON object")
    if raw.get("v") != VERSION:
        raise NativeError(Code.unsupported_version, f"this server speaks version {VERSION}", "v")
    kind = raw.get("type")
    if kind not in TYPES:
        shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
        raise NativeError(Code.unknown_type, f"unknown message type {shown!r}", "type")
    try:
        # JSON mode, strict: "0.5" is not a number and 1 is not a boolean, as the README says.
        return _MESSAGE.validate_json(text, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        where = ".".join(loc[1:] if loc and loc[0] == kind else loc) or None
        raise NativeError(Code.invalid, f"{err['msg']}", where) from None


def parse_audio(frame: bytes, parties: dict[int, str]) -> tuple[str, np.ndarray]:
    """One binary frame → (party, float32 samples at 16 kHz)."""
    if len(frame) < 3:
        raise NativeError(Code.bad_audio, "a binary frame is 1 byte of party id + PCM16 samples")
    if len(frame) - 1 > MAX_AUDIO_BYTES:
        raise NativeError(
            Code.too_large, f"a binary frame carries at most {MAX_AUDIO_BYTES} bytes of audio"
        )
    party = parties.get(frame[0])
    if party is None:
        raise NativeError(Code.unknown_party, f"party id {frame[0]} was not declared in start")
    payload = frame[1:]
    if len(payload) % 2:
        raise NativeError(Code.bad_audio, "an odd number of audio bytes is not PCM16")
    samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    return party, samples


def check_series(msg: SeriesMessage) -> tuple[np.ndarray, np.ndarray]:
    if msg.name not in SERIES_NAMES:
        raise NativeError(
            Code.unsupported,
            f"no registered detector reads a series named {msg.name!r} "
            f"(known: {', '.join(sorted(SERIES_NAMES))})",
            "name",
        )
    if len(msg.times_ms) != len(msg.values):
        raise NativeError(Code.invalid, "times_ms and values differ in length", "values")
    t = np.asarray(msg.times_ms, dtype=np.float64)
    v = np.asarray(msg.values, dtype=np.float64)
    if not (np.isfinite(t).all() and np.isfinite(v).all()):
        raise NativeError(Code.invalid, "series values must be finite", "values")
    if (np.diff(t) < 0).any() or t[0] < 0:
        raise NativeError(Code.invalid, "times_ms must be ≥ 0 and non-decreasing", "times_ms")
    return t, v


def party_map(start: Start) -> dict[int, str]:
    """Party id → the runtime's party name (the caller is the one decided about; the agent
    is read for turn-taking only)."""
    ids = [p.id for p in start.parties]
    if len(set(ids)) != len(ids):
        raise NativeError(Code.invalid, "party ids must be distinct", "parties")
    roles = [p.role for p in start.parties]
    if len(set(roles)) != len(roles):
        raise NativeError(Code.invalid, "each role at most once", "parties")
    return {p.id: CALLER if p.role == "caller" else AGENT for p in start.parties}


def decision_message(event: dict[str, Any]) -> dict[str, Any]:
    """A session event (``sessions.event_of``) as the native ``decision`` message."""
    return {"v": VERSION, "type": "decision", **event}
