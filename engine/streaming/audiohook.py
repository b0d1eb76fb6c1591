"""Genesys Cloud AudioHook v2, the wire format (``wss://…/v1/streams/audiohook``).

The client (Genesys Cloud) upgrades with ``X-API-KEY``, ``Audiohook-Organization-Id``,
``Audiohook-Session-Id``, ``Audiohook-Correlation-Id`` and, when the integration has a
client secret, an HTTP message signature (``signatures``). Then JSON text messages in one
envelope, ``{version: "2", id, type, seq, serverseq, position, parameters}`` from the client
and ``{version: "2", id, type, seq, clientseq, parameters}`` from the server, each side
numbering its own messages from 1; and binary frames of audio in the media the server
chose in ``opened`` (PCMU or L16 at 8 kHz, the ``external`` and ``internal`` channels
interleaved when both), of any size but whole samples, the stream's position kept by
counting them. Here: the message models, media negotiation, positions as ISO-8601
durations, frame decoding, the session context from ``customConfig``/``inputVariables``,
and the pause decision under detector backlog. Pure: no I/O.

The server reports a problem with ``disconnect`` (reason ``error`` or ``unauthorized``)
whose ``info`` starts with the AudioHook error code that names it (``AudioHookError``);
the client then runs its close transaction. Genesys may add fields to its messages, so
unknown *fields* are ignored; every field we read is strictly typed and unknown *message
types* are refused.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.streaming import twilio as tw

VERSION = "2"
NULL_UUID = "00000000-0000-0000-0000-000000000000"
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_DURATION = re.compile(r"^PT(\d{1,9}(?:\.\d{1,9})?)S$")
RATE = 8000
#: One binary frame may carry at most this much audio (Genesys sends tens of ms).
MAX_FRAME_SECONDS = 1.0
#: Decoded audio goes to the detector lane in blocks of at least this many samples (100 ms).
BLOCK_SAMPLES = 800

#: The AudioHook error codes our ``disconnect`` infos start with.
BAD_REQUEST = 400  # not JSON, a malformed message or field, seq out of order
NOT_ALLOWED = 405  # an unknown message type
CONFLICT = 409  # a message the session's state does not allow (before open, a 2nd open)
TIMEOUT = 408  # no open in time, no message for too long
TOO_LARGE = 413  # a message or frame over its bound
UNSUPPORTED_MEDIA = 415  # no offered media we can analyse; a frame of partial samples
TOO_MANY = 429  # the replica's session limit; too many messages per second
INTERNAL = 500
UNAVAILABLE = 503  # the detectors did not load


class AudioHookError(Exception):
    """Bad input or a refusal: ``disconnect`` with ``reason`` and ``info`` = "code: text"."""

    def __init__(
        self, code: int, message: str, reason: Literal["error", "unauthorized"] = "error"
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.info = f"{code}: {message}"[:400]


# --- durations and positions ----------------------------------------------------------------


def parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise AudioHookError(BAD_REQUEST, f"{text[:40]!r} is not an ISO-8601 duration PT<s>S")
    return float(m.group(1))


def format_duration(samples: int, rate: int = RATE) -> str:
    """Samples at ``rate`` as ``PT<seconds>S`` (exact to the millisecond, no float drift)."""
    ms = samples * 1000 // rate
    s, frac = divmod(ms, 1000)
    return f"PT{s}.{frac:03d}S".replace(".000S", "S")


# --- messages -------------------------------------------------------------------------------

_MSG = ConfigDict(frozen=True, extra="ignore", strict=True)


class ClientMessage(BaseModel):
    """The client's envelope: ``parameters`` are checked by the message type's model."""

    model_config = _MSG
    version: Literal["2"]
    id: str = Field(pattern=UUID)
    type: str = Field(min_length=1, max_length=32)
    seq: int = Field(ge=1)
    serverseq: int = Field(ge=0)
    position: str = Field(pattern=_DURATION.pattern)
    parameters: dict[str, Any]


class MediaOffer(BaseModel):
    """One offered media; kept loose so an offer we cannot use is skipped, not refused."""

    model_config = _MSG
    type: str = Field(max_length=32)
    format: str = Field(max_length=32)
    channels: list[str] = Field(min_length=1, max_length=2)
    rate: int

    def usable(self) -> bool:
        return (
            self.type == "audio"
            and self.format in ("PCMU", "L16")
            and self.rate == RATE
            and "external" in self.channels
            and set(self.channels) <= {"external", "internal"}
            and len(set(self.channels)) == len(self.channels)
        )

    def wire(self) -> dict[str, Any]:
        return {"type": self.type, "format": self.format, "channels": self.channels, "rate": 8000}


class Participant(BaseModel):
    # ani, aniName and dnis are the caller's number and name: never read, kept or logged.
    model_config = _MSG
    id: str = Field(max_length=64)


_Scalar = str | bool | int | float


class OpenParameters(BaseModel):
    model_config = _MSG
    organizationId: str = Field(pattern=UUID)
    conversationId: str = Field(pattern=UUID)
    participant: Participant
    media: list[MediaOffer] = Field(max_length=8)
    language: str | None = Field(default=None, max_length=16)
    supportedLanguages: bool = False  # asks which languages the server transcribes: none
    customConfig: dict[str, Any] = Field(default_factory=dict, max_length=32)
    inputVariables: dict[str, Any] = Field(default_factory=dict, max_length=32)


class CloseParameters(BaseModel):
    model_config = _MSG
    reason: Literal["end", "error", "disconnect", "reconnect"]


class PingParameters(BaseModel):
    model_config = _MSG
    rtt: str | None = Field(default=None, pattern=_DURATION.pattern)


class UpdateParameters(BaseModel):
    model_config = _MSG
    language: str | None = Field(default=None, max_length=16)


class GapParameters(BaseModel):
    """``resumed`` and ``discarded``: where audio was dropped on the client, and how much."""

    model_config = _MSG
    start: str = Field(pattern=_DURATION.pattern)
    discarded: str = Field(pattern=_DURATION.pattern)


class ErrorParameters(BaseModel):
    model_config = _MSG
    code: int = Field(ge=400, le=9999)
    message: str = Field(max_length=2000)
    retryAfter: str | None = Field(default=None, pattern=_DURATION.pattern)


class EmptyParameters(BaseModel):
    model_config = _MSG


#: The client's message types, with their parameters.
CLIENT_TYPES: dict[str, type[BaseModel]] = {
    "open": OpenParameters,
    "close": CloseParameters,
    "ping": PingParameters,
    "update": UpdateParameters,
    "paused": EmptyParameters,
    "resumed": GapParameters,
    "discarded": GapParameters,
    "error": ErrorParameters,
}


def _first_error(exc: ValidationError, prefix: str) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{prefix}{'.' if where else ''}{where}: {err['msg']}"


def parse_envelope(frame: object) -> ClientMessage:
    if not isinstance(frame, dict):
        raise AudioHookError(BAD_REQUEST, "a message must be a JSON object")
    try:
        return ClientMessage.model_validate(frame)
    except ValidationError as exc:
        raise AudioHookError(BAD_REQUEST, _first_error(exc, "message")) from None


def parse_parameters(msg: ClientMessage) -> BaseModel:
    model = CLIENT_TYPES.get(msg.type)
    if model is None:
        raise AudioHookError(NOT_ALLOWED, f"{msg.type[:32]!r} is not an AudioHook client message")
    try:
        return model.model_validate(msg.parameters)
    except ValidationError as exc:
        raise AudioHookError(BAD_REQUEST, _first_error(exc, f"{msg.type}.parameters")) from None


def server_message(
    session_id: str, kind: str, seq: int, clientseq: int, parameters: dict[str, Any]
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "id": session_id,
        "type": kind,
        "seq": seq,
        "clientseq": clientseq,
        "parameters": parameters,
    }


def choose_media(offers: list[MediaOffer]) -> MediaOffer:
    """The first offer (the client's preference order) we can analyse: PCMU or L16, 8 kHz,
    with the caller's ``external`` channel (alone, or interleaved with ``internal``)."""
    for offer in offers:
        if offer.usable():
            return offer
    shown = ", ".join(f"{o.format}/{o.rate}/{'+'.join(o.channels)}" for o in offers[:4])
    raise AudioHookError(
        UNSUPPORTED_MEDIA,
        f"no offered media is supported ({shown or 'none offered'}); expected PCMU or L16 "
        "at 8000 Hz with the external channel",
    )


# --- audio frames ---------------------------------------------------------------------------


def decode_frame(data: bytes, media: MediaOffer) -> dict[str, np.ndarray]:
    """One binary frame → each channel's samples (float32 in [-1, 1], 8 kHz).

    PCMU is G.711 μ-law, one byte a sample; L16 is 16-bit signed linear PCM, little-endian
    (as Genesys's reference implementation reads it); channels are interleaved in the
    order ``opened`` named them."""
    width = 1 if media.format == "PCMU" else 2
    stride = width * len(media.channels)
    if len(data) > int(MAX_FRAME_SECONDS * RATE) * stride:
        raise AudioHookError(TOO_LARGE, f"an audio frame of more than {MAX_FRAME_SECONDS:g} s")
    if len(data) % stride:
        raise AudioHookError(
            UNSUPPORTED_MEDIA,
            f"an audio frame of {len(data)} bytes is not whole samples ({stride} bytes each)",
        )
    if width == 1:
        samples = tw.mulaw_decode(data)
    else:
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    frames = samples.reshape(-1, len(media.channels))
    return {ch: frames[:, i] for i, ch in enumerate(media.channels)}


# --- customConfig / inputVariables → session context ---------------------------------------

#: The names read from ``open.parameters.customConfig`` and ``.inputVariables``: Twilio's
#: ``customParameters`` names, less the key (AudioHook sends ``X-API-KEY``) and ``marks``
#: (decisions always go back as ``event`` messages).
NAMES: dict[str, str] = {
    k: v for k, v in tw.PARAMETERS.items() if k not in ("liveguard_key", "marks")
}
_BOOLS = {
    "consent_media_analysis",
    "consent_raw_media_escalation",
    "device_new_device",
    "device_geo_mismatch",
}
_INTS = {"identity_seconds_since_auth", "identity_failed_attempts"}
_NUMBERS = {"transaction_value"}


def _typed(where: str, value: object, name: str) -> object:
    """A JSON value or its string form (Architect variables are strings) by the name's
    documented type; anything else is refused, naming it."""
    if name in _BOOLS:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise AudioHookError(BAD_REQUEST, f"{where}.{name}: expected true or false")
    if name in _INTS:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
            return value
        if isinstance(value, str) and value.isdigit() and len(value) <= 9:
            return int(value)
        raise AudioHookError(BAD_REQUEST, f"{where}.{name}: expected an integer")
    if name in _NUMBERS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise AudioHookError(BAD_REQUEST, f"{where}.{name}: expected a number")
    if not isinstance(value, str):
        raise AudioHookError(BAD_REQUEST, f"{where}.{name}: expected a string")
    return value


def context_from_open(p: OpenParameters) -> tuple[dict[str, object], dict[str, str]]:
    """(the context as ``LiveContext`` input, the control values ``session_id``/``policy``).

    ``customConfig`` is the integration's (the same for every call); ``inputVariables``
    are the call's (an Architect flow's), and win where both name a value."""
    values: dict[str, object] = {}
    for where, given in (("customConfig", p.customConfig), ("inputVariables", p.inputVariables)):
        for name, value in given.items():
            if name not in NAMES:
                raise AudioHookError(BAD_REQUEST, f"{where}.{name[:40]}: not a liveguard name")
            values[name] = _typed(where, value, name)
    control = {k: str(values[k]) for k in ("session_id", "policy") if k in values}
    ctx: dict[str, object] = {
        "channel": values.get("channel", "support_call"),
        "participant": values.get("participant", "external"),
    }
    if "kind" in values:
        ctx["kind"] = values["kind"]
    ctx["consent"] = {
        k: values[f"consent_{k}"]
        for k in ("media_analysis", "raw_media_escalation")
        if f"consent_{k}" in values
    }
    identity: dict[str, object] = {"assurance": values.get("identity_assurance", "none")}
    for k in ("method", "seconds_since_auth", "failed_attempts"):
        if f"identity_{k}" in values:
            identity[k] = values[f"identity_{k}"]
    ctx["identity"] = identity
    for section, fields in (
        ("transaction", ("kind", "value", "currency")),
        ("device", ("posture", "new_device", "geo_mismatch")),
    ):
        got = {f: values[f"{section}_{f}"] for f in fields if f"{section}_{f}" in values}
        if got:
            ctx[section] = got
    return ctx, control


# --- bounds ---------------------------------------------------------------------------------


class RateLimit:
    """At most ``limit`` messages in any one-second window of the stream."""

    def __init__(self, limit: int, clock: Any = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.window = clock()
        self.count = 0

    def hit(self) -> None:
        now = self.clock()
        if now - self.window >= 1.0:
            self.window, self.count = now, 0
        self.count += 1
        if self.count > self.limit:
            raise AudioHookError(TOO_MANY, f"more than {self.limit} messages per second")


class Backpressure:
    """When to ask the client to ``pause``: the detectors were at least ``lag_s`` behind real
    time (the oldest window waiting for them had waited that long) at ``consecutive`` blocks
    in a row, so one busy moment, e.g. the first inference warming up, is not a backlog.
    Paused for ``hold_s``, then ``resume``; still behind, the next blocks pause again. The
    client discards what it would have sent and says how much in ``resumed``, so the load
    goes down before the runtime must drop windows, and the session skips ahead instead of
    queueing behind."""

    def __init__(self, lag_s: float, hold_s: float = 2.0, consecutive: int = 2) -> None:
        self.lag_s = lag_s
        self.hold_s = hold_s
        self.consecutive = consecutive
        self.busy = 0
        self.paused_at: float | None = None
        self.pauses = 0

    def observe(self, lag_s: float, now: float) -> bool:
        """True: send ``pause`` now (the detectors are ``lag_s`` behind)."""
        self.busy = self.busy + 1 if lag_s >= self.lag_s else 0
        if self.paused_at is None and self.busy >= self.consecutive:
            self.paused_at = now
            self.busy = 0
            self.pauses += 1
            return True
        return False

    def resume_due(self, now: float) -> bool:
        """True (once per pause): send ``resume`` now."""
        if self.paused_at is not None and now - self.paused_at >= self.hold_s:
            self.paused_at = None
            return True
        return False

    def remaining(self, now: float) -> float:
        """Seconds of the hold still to run (0.0 when not paused)."""
        return 0.0 if self.paused_at is None else max(0.0, self.paused_at + self.hold_s - now)

    @property
    def paused(self) -> bool:
        return self.paused_at is not None
