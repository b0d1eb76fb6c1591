"""Twilio Media Streams, the wire format (``<Stream url="wss://…/v1/streams/twilio">``).

Twilio sends JSON text frames: ``connected``, then ``start`` (stream and call ids, tracks,
``customParameters`` and the media format: audio/x-mulaw, 8000 Hz, mono), then ``media``
frames (``track``, ``chunk``, ``timestamp``, base64 ``payload`` of 20 ms of μ-law), ``dtmf``,
``mark`` (echoes of marks we sent, on bidirectional streams) and ``stop``. Here: the frame
models, G.711 μ-law, the 8 → 16 kHz resampler and the per-track ordering by ``chunk``.

Twilio may add fields to its messages over versions, so unknown *fields* of a known
message are ignored; every field we read is strictly typed, and unknown *events* are
refused (``ProtocolError``).
"""

from __future__ import annotations

import binascii
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: RFC 6455 close codes the adapter answers bad input with.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # unknown event, media before start, authentication, rate
CLOSE_UNSUPPORTED = 1003  # binary frames, a media format other than μ-law 8 kHz mono
CLOSE_INVALID = 1007  # not JSON, bad base64, a field of the wrong type
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013  # the replica's session limit
CLOSE_INTERNAL = 1011

#: 20 ms of 8 kHz μ-law is 160 bytes; a frame may carry at most one second.
MAX_PAYLOAD_BYTES = 8_000
#: How many chunks may arrive ahead of a missing one before it is given up as a gap.
REORDER_WINDOW = 16

_DIGITS = r"^[0-9]{1,10}$"


class ProtocolError(Exception):
    """Bad input from the stream client: closed with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        # RFC 6455: a close reason is at most 123 bytes of UTF-8.
        self.reason = reason.encode()[:123].decode(errors="ignore")


_FRAME = ConfigDict(frozen=True, extra="ignore", strict=True)


class MediaFormat(BaseModel):
    model_config = _FRAME
    encoding: str
    sampleRate: int
    channels: int


class StartBody(BaseModel):
    model_config = _FRAME
    streamSid: str = Field(min_length=1, max_length=64)
    callSid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")
    accountSid: str | None = Field(default=None, max_length=64)
    tracks: list[Literal["inbound", "outbound"]] = Field(min_length=1, max_length=2)
    customParameters: dict[str, str] = Field(default_factory=dict, max_length=32)
    mediaFormat: MediaFormat


class StartMessage(BaseModel):
    model_config = _FRAME
    event: Literal["start"]
    streamSid: str | None = Field(default=None, max_length=64)
    start: StartBody


class MediaBody(BaseModel):
    model_config = _FRAME
    track: Literal["inbound", "outbound"]
    chunk: str = Field(pattern=_DIGITS)
    timestamp: str = Field(pattern=_DIGITS)
    payload: str = Field(max_length=(MAX_PAYLOAD_BYTES * 4) // 3 + 4)


class MediaMessage(BaseModel):
    model_config = _FRAME
    event: Literal["media"]
    media: MediaBody


def parse(model: type[BaseModel], frame: dict[str, object]) -> BaseModel:
    """``model`` from a decoded frame; a wrong field closes with 1007, naming the field."""
    try:
        return model.model_validate(frame)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "frame"
        raise ProtocolError(CLOSE_INVALID, f"{where}: {err['msg']}") from None


def check_media_format(fmt: MediaFormat) -> None:
    if (fmt.encoding, fmt.sampleRate, fmt.channels) != ("audio/x-mulaw", 8000, 1):
        raise ProtocolError(
            CLOSE_UNSUPPORTED,
            f"start.mediaFormat: {fmt.encoding} {fmt.sampleRate} Hz x{fmt.channels} is not "
            "supported; expected audio/x-mulaw 8000 Hz mono",
        )


def decode_payload(payload: str) -> bytes:
    try:
        raw = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(CLOSE_INVALID, "media.payload: not valid base64") from None
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(CLOSE_TOO_BIG, f"media.payload: more than {MAX_PAYLOAD_BYTES} bytes")
    return raw


# --- G.711 μ-law ------------------------------------------------------------------------


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + 0x84) << exponent
    sample = magnitude - 0x84
    return (np.where(u & 0x80, -sample, sample) / 32768.0).astype(np.float32)


_ULAW = _ulaw_table()


def mulaw_decode(data: bytes) -> np.ndarray:
    """μ-law bytes → float32 in [-1, 1]."""
    return _ULAW[np.frombuffer(data, dtype=np.uint8)]


def mulaw_encode(x: np.ndarray) -> bytes:
    """float samples in [-1, 1] → μ-law bytes (G.711; what a Twilio client sends)."""
    s = np.clip(np.asarray(x, dtype=np.float64) * 32768.0, -32768, 32767).astype(np.int32)
    sign = (s < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(s), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def lowpass_taps(n: int, cutoff: float) -> np.ndarray:
    """A Hamming-windowed sinc low-pass with unit DC gain: `scipy.signal.firwin(n, cutoff)`'s
    taps (a test holds them equal), written out because importing scipy.signal cost every
    server process a second at startup for these 63 numbers."""
    m = np.arange(n) - (n - 1) / 2
    h = cutoff * np.sinc(cutoff * m) * np.hamming(n)
    return h / h.sum()


class Upsampler:
    """8 kHz → 16 kHz for the detectors: zero-stuffing and a low-pass FIR whose state is
    kept across chunks, so 20 ms chunks join without clicks at their edges.

    Computed in polyphase form: of the zero-stuffed signal's taps only every other one
    meets a sample, so the even outputs are the input convolved with the even taps and the
    odd outputs with the odd taps, the last input samples carried over as the state. The
    same numbers as filtering the zero-stuffed signal (``scipy.signal.lfilter``), at half
    the work and without lfilter's per-call overhead: this runs for every stream on the
    event loop, ten times a second."""

    _TAPS = 2.0 * lowpass_taps(63, 0.5)
    _EVEN = _TAPS[0::2].copy()
    _ODD = _TAPS[1::2].copy()

    def __init__(self) -> None:
        self._history = np.zeros(len(self._EVEN) - 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, dtype=np.float32)
        xx = np.concatenate((self._history, np.asarray(x, dtype=np.float64)))
        y = np.empty(2 * len(x))
        y[0::2] = np.convolve(xx, self._EVEN, "valid")
        y[1::2] = np.convolve(xx[1:], self._ODD, "valid")
        self._history = xx[len(xx) - len(self._history) :]
        return y.astype(np.float32)


# --- ordering ---------------------------------------------------------------------------


class ChunkOrder:
    """Media of one track in ``chunk`` order.

    Twilio numbers each track's chunks from 1. A chunk ahead of the next expected one waits
    (at most ``REORDER_WINDOW`` of them); once that many wait, the missing ones are given
    up and counted as a gap (no silence is invented). A chunk at or behind the point
    already passed — a duplicate, or one that arrived after its gap was given up — is
    discarded and counted.
    """

    def __init__(self, window: int = REORDER_WINDOW) -> None:
        self.window = window
        self.next = 1
        self.waiting: dict[int, bytes] = {}
        self.gaps = 0  # chunks never received
        self.discarded = 0  # duplicates and chunks too late

    def add(self, chunk: int, data: bytes) -> list[bytes]:
        if chunk < self.next or chunk in self.waiting:
            self.discarded += 1
            return []
        self.waiting[chunk] = data
        out = self._ready()
        if len(self.waiting) > self.window:
            lowest = min(self.waiting)
            self.gaps += lowest - self.next
            self.next = lowest
            out.extend(self._ready())
        return out

    def flush(self) -> list[bytes]:
        """What still waits, in order, at the end of the stream (its holes are gaps)."""
        out: list[bytes] = []
        for chunk in sorted(self.waiting):
            self.gaps += chunk - self.next
            out.append(self.waiting[chunk])
            self.next = chunk + 1
        self.waiting.clear()
        return out

    def _ready(self) -> list[bytes]:
        out: list[bytes] = []
        while self.next in self.waiting:
            out.append(self.waiting.pop(self.next))
            self.next += 1
        return out


# --- customParameters → session context -------------------------------------------------

#: ``<Parameter name=… value=…/>`` names read from ``start.customParameters`` (all values
#: are strings on Twilio's wire). Any other name is refused, naming it.
PARAMETERS: dict[str, str] = {
    "liveguard_key": "API key (role decide); Twilio sends no custom headers. Never logged.",
    "session_id": "the session id (default: the callSid)",
    "policy": "a named policy (it must cover channel and kind); default: by applies_to",
    "marks": "'true': send a Twilio mark on each change of action (bidirectional streams)",
    "channel": "conference | support_call (default support_call)",
    "kind": "the session kind, e.g. password_reset (required)",
    "participant": "internal | external (default external)",
    "consent_media_analysis": "'true' | 'false' (default false: no audio signal is used)",
    "consent_raw_media_escalation": "'true' | 'false' (default false)",
    "identity_assurance": "none | low | substantial | high (default none)",
    "identity_method": "free text, e.g. knowledge_based",
    "identity_seconds_since_auth": "integer ≥ 0",
    "identity_failed_attempts": "integer ≥ 0",
    "transaction_kind": "e.g. payout (with transaction_value)",
    "transaction_value": "number ≥ 0",
    "transaction_currency": "ISO 4217, default USD",
    "device_posture": "managed | known | unknown | compromised",
    "device_new_device": "'true' | 'false'",
    "device_geo_mismatch": "'true' | 'false'",
}

_BOOL = {"true": True, "false": False}


def _typed(name: str, value: str, kind: str) -> object:
    if kind == "bool":
        if value not in _BOOL:
            raise ProtocolError(CLOSE_INVALID, f"customParameters.{name}: expected true or false")
        return _BOOL[value]
    if kind == "int":
        if not value.isdigit() or len(value) > 9:
            raise ProtocolError(CLOSE_INVALID, f"customParameters.{name}: expected an integer")
        return int(value)
    try:
        number = float(value)
    except ValueError:
        raise ProtocolError(CLOSE_INVALID, f"customParameters.{name}: expected a number") from None
    return number


def context_from_parameters(params: dict[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """(the context as ``LiveContext`` input, the control parameters) from customParameters.

    Values are turned into JSON types by the parameter's documented type only ("true" is a
    boolean only where a boolean is documented), so the strict context model then checks
    them exactly as it checks a JSON ``PUT /v1/sessions/{id}/context``.
    """
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ProtocolError(
            CLOSE_INVALID, f"customParameters.{unknown[0][:40]}: not a liveguard parameter"
        )
    control = {
        k: params[k] for k in ("liveguard_key", "session_id", "policy", "marks") if k in params
    }
    ctx: dict[str, object] = {}
    for k in ("channel", "kind", "participant"):
        if k in params:
            ctx[k] = params[k]
    ctx.setdefault("channel", "support_call")
    ctx.setdefault("participant", "external")
    consent: dict[str, object] = {}
    for k in ("media_analysis", "raw_media_escalation"):
        if f"consent_{k}" in params:
            consent[k] = _typed(f"consent_{k}", params[f"consent_{k}"], "bool")
    ctx["consent"] = consent
    identity: dict[str, object] = {"assurance": params.get("identity_assurance", "none")}
    if "identity_method" in params:
        identity["method"] = params["identity_method"]
    for k in ("seconds_since_auth", "failed_attempts"):
        if f"identity_{k}" in params:
            identity[k] = _typed(f"identity_{k}", params[f"identity_{k}"], "int")
    ctx["identity"] = identity
    if any(k.startswith("transaction_") for k in params):
        tx: dict[str, object] = {}
        if "transaction_kind" in params:
            tx["kind"] = params["transaction_kind"]
        if "transaction_value" in params:
            tx["value"] = _typed("transaction_value", params["transaction_value"], "float")
        if "transaction_currency" in params:
            tx["currency"] = params["transaction_currency"]
        ctx["transaction"] = tx
    if any(k.startswith("device_") for k in params):
        dev: dict[str, object] = {}
        if "device_posture" in params:
            dev["posture"] = params["device_posture"]
        for k in ("new_device", "geo_mismatch"):
            if f"device_{k}" in params:
                dev[k] = _typed(f"device_{k}", params[f"device_{k}"], "bool")
        ctx["device"] = dev
    if "marks" in control and control["marks"] not in _BOOL:
        raise ProtocolError(CLOSE_INVALID, "customParameters.marks: expected true or false")
    return ctx, control
