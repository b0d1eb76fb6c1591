"""Genesys Cloud AudioHook v2 in, the session's decisions out as ``event`` messages.

``wss://…/v1/streams/audiohook``. The upgrade is checked before it is accepted, each
refusal an HTTP answer with a JSON reason (``audiohook_refused``): the ``Audiohook-*``
headers (400), ``X-API-KEY`` (our API key, role ``decide`` as for Twilio: 401/403), the
HTTP message signature when a client secret is configured (401: unsigned, bad, expired,
from the future, a replayed nonce), and the replica's session limit (429 + Retry-After,
which Genesys retries). Then the open transaction (media negotiated, context read, the
session opened and decided once, ``opened``), audio, ``ping``/``pong``, pauses either way,
and the close transaction (the final decision, sent as a last ``event``, then ``closed``).
A problem after the upgrade is a ``disconnect`` naming its AudioHook error code; the
client's close transaction that follows is answered, and the socket closed.

Over ~400 lines on purpose: ``AudioHookStream`` is one protocol state machine (upgrade,
open, audio, pause, close) whose states share the sequence counters and the sample
position; split across modules, a transition could be changed without the others.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import time
from typing import Any

import numpy as np
import structlog
from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from engine.api.auth import authorize_stream
from engine.core.errors import LiveguardError
from engine.settings import Settings
from engine.streaming import audiohook as ah
from engine.streaming import signatures as sig
from engine.streaming import twilio as tw
from engine.streaming.sessions import (
    AGENT,
    CALLER,
    DetectorsUnavailable,
    LiveContext,
    LiveSession,
    LiveSessions,
    SessionExists,
    SessionLimitReached,
    event_of,
)
from engine.streaming.tracks import PartyBlocks

log = structlog.get_logger("liveguard.live")
router = APIRouter(tags=["live"])

ROUTE = "/v1/streams/audiohook"
#: How long the server waits for the client's close transaction after a ``disconnect``,
#: and for the client to drop the socket after ``closed``.
CLOSE_WAIT_S = 5.0
#: The custom entity type of a decision in an ``event`` message.
ENTITY = "liveguard_decision"
_NONCES_KEY = "audiohook_nonces"
#: A session's ``error`` messages past this many are counted only.
MAX_LOGGED_CLIENT_ERRORS = 10


def log_startup(settings: Settings) -> None:
    """Say once, at startup, whether AudioHook upgrades must be signed (never the secret)."""
    if settings.audiohook_client_secret is None:
        log.warning(
            "audiohook.signatures_not_required",
            reason="LIVEGUARD_AUDIOHOOK_CLIENT_SECRET is unset: AudioHook upgrades are "
            "admitted on X-API-KEY alone",
        )
    else:
        log.info("audiohook.signatures_required", max_age_s=sig.MAX_AGE_S)


def client_secret(settings: Settings) -> bytes | None:
    if settings.audiohook_client_secret is None:
        return None
    raw = settings.audiohook_client_secret.get_secret_value().strip()
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        # Genesys shows the secret in base64; anything else is used as given.
        return raw.encode()


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        if self.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": 'Signature realm="audiohook"'}
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message}},
            status_code=self.status,
            headers=headers,
        )


class StalledClient(Exception):
    """The client reads none of our messages: the session ends, the socket is closed."""


class AudioHookStream:
    """One AudioHook session: the upgrade's checks, then its state machine."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.registry: LiveSessions = ws.app.state.live
        self.settings: Settings = ws.app.state.runtime.settings
        self.headers = _headers(ws)
        self.session_id = ""  # Audiohook-Session-Id: every message's ``id``
        self.session: LiveSession | None = None
        self.media: ah.MediaOffer | None = None
        self.opened = False
        self.probe = False  # a connection probe: opened, never a live session
        self.client_paused = False
        self.closing = False
        self.clientseq = 0
        self.seq = 0
        self.samples = 0  # the stream's position, counted in samples per channel
        self.discarded_samples = 0  # what the client says it dropped (pauses, backlog)
        self.dropped_frames = 0  # frames we discarded (arrived while paused)
        self.drift_samples = 0  # the most the client's position and ours ever differed
        self.client_errors = 0
        self.events_lost = 0
        self.blocks: PartyBlocks | None = None
        self.rate = ah.RateLimit(self.settings.stream_max_messages_per_s)
        self.backpressure = ah.Backpressure(self.settings.audiohook_pause_lag_s)
        self.outbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=32)
        self.resumer: asyncio.Task[None] | None = None
        #: The start decision, made before ``opened`` may be sent: it follows ``opened``.
        self.early_event: dict[str, Any] | None = None

    # --- the upgrade ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._admit()
        except Refused as exc:
            log.warning(
                "audiohook.refused", status=exc.status, code=exc.code, reason=exc.message[:200]
            )
            try:
                await self.ws.send_denial_response(exc.response())
            except RuntimeError:  # a server without the denial-response extension
                await self.ws.close(1008, f"{exc.status} {exc.code}")
            return
        await self.ws.accept()
        sender = asyncio.create_task(self._send_loop())
        try:
            await self._serve()
        finally:
            # Whatever happened on the wire, an opened session gets its final decision; the
            # shield keeps a cancelled handler (server shutdown) from leaking it.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._end(tell_client=False))
            if self.resumer is not None:
                self.resumer.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.outbox.join(), 1.0)
            sender.cancel()
            with contextlib.suppress(Exception):
                if self.ws.application_state != WebSocketState.DISCONNECTED:
                    await self.ws.close(1000)

    async def _admit(self) -> None:
        h = self.headers
        for name in ("audiohook-organization-id", "audiohook-session-id"):
            value = h.get(name, "")
            if not _is_uuid(value):
                raise Refused(400, "bad_request", f"{name}: a UUID is required")
        if not 0 < len(h.get("audiohook-correlation-id", "")) <= 128:
            raise Refused(400, "bad_request", "audiohook-correlation-id: required")
        self.session_id = h["audiohook-session-id"].lower()
        key = h.get("x-api-key")
        try:
            await authorize_stream(self.ws, key, ROUTE)
        except LiveguardError as exc:
            message = exc.message.replace("'Authorization: Bearer <key>'", "X-API-KEY")
            raise Refused(exc.http_status, exc.code, message) from None
        secret = client_secret(self.settings)
        if secret is not None:
            assert key is not None
            await self._check_signature(secret, key)
        if len(self.registry) >= self.registry.max_sessions:
            raise Refused(
                429,
                "session_limit",
                f"this replica streams {self.registry.max_sessions} sessions already "
                "(max_live_sessions); retry later",
                retry_after=self.settings.retry_after_s,
            )

    async def _check_signature(self, secret: bytes, key: str) -> None:
        scope = self.ws.scope
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        req = sig.Request(
            headers=self.headers,
            method="GET",
            request_target=target.decode("latin-1"),
            scheme="https" if scope.get("scheme") in ("wss", "https") else "http",
        )
        now = time.time()
        try:
            verified = sig.verify(req, secret, key, now)
        except sig.SignatureRefused as exc:
            raise Refused(401, "bad_signature", str(exc)) from None
        # The nonce is recorded in the store, so a replay to any replica sharing it is
        # refused (engine.store.nonces), with this process's cache as the fast first check.
        nonces: sig.ReplayGuard | None = getattr(self.ws.app.state, _NONCES_KEY, None)
        if nonces is None:
            rt = self.ws.app.state.runtime
            nonces = sig.ReplayGuard.on(rt.db, self.settings.audiohook_max_nonces)
            setattr(self.ws.app.state, _NONCES_KEY, nonces)
        try:
            fresh = await nonces.admit(verified, now)
        except sig.CacheFull:
            raise Refused(
                503, "busy", "too many signed upgrades in flight; retry later", retry_after=1
            ) from None
        except sig.NoncesUnavailable as exc:
            # Never admitted unchecked: a replay could not be told from a first use.
            log.error("audiohook.nonce_store_failed", error=str(exc))
            raise Refused(
                503,
                "store_unavailable",
                "the signature's nonce cannot be checked (the store is unavailable); retry later",
                retry_after=self.settings.retry_after_s,
            ) from None
        if not fresh:
            raise Refused(401, "replayed_nonce", "the signature's nonce was used before")

    # --- the session ---------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            try:
                over = await asyncio.wait_for(
                    self._until_opened(), self.settings.stream_start_timeout_s
                )
            except TimeoutError:
                raise ah.AudioHookError(ah.TIMEOUT, "no open message in time") from None
            while not over:
                # While we hold the stream paused the client rightly sends no audio: its
                # silence is ours, so the idle bound grows by the hold (a loaded server's
                # late ``resume`` must not turn into the client's timeout).
                idle = self.settings.stream_idle_timeout_s
                if self.backpressure.paused:
                    idle += self.backpressure.hold_s
                over = await self._step(await self._receive(idle))
        except ah.AudioHookError as exc:
            await self._disconnect(exc)
        except (WebSocketDisconnect, StalledClient):
            pass
        except Exception as exc:  # our fault: this stream ends, the service goes on
            log.error("live.stream_failed", error=type(exc).__name__, detail=str(exc)[:300])
            with contextlib.suppress(Exception):
                await self._disconnect(ah.AudioHookError(ah.INTERNAL, "internal error"))

    async def _until_opened(self) -> bool:
        """True when the session ended before it opened (a close transaction)."""
        while not self.opened:
            if await self._step(await self.ws.receive()):
                return True
        return False

    async def _receive(self, idle_s: float) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.ws.receive(), idle_s)
        except TimeoutError:
            raise ah.AudioHookError(ah.TIMEOUT, f"no message for {idle_s:g} s") from None

    async def _step(self, message: dict[str, Any]) -> bool:
        """Handle one WebSocket message; True when the session is over."""
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        self.rate.hit()
        data = message.get("bytes")
        if data is not None:
            await self._audio(data)
            return False
        text = message.get("text") or ""
        # uvicorn's ws_max_size refuses larger messages before they are read (serve sets it).
        if len(text) > self.settings.stream_max_frame_bytes:
            raise ah.AudioHookError(ah.TOO_LARGE, "a message larger than stream_max_frame_bytes")
        try:
            frame = json.loads(text)
        except ValueError:
            raise ah.AudioHookError(ah.BAD_REQUEST, "a text message that is not JSON") from None
        msg = ah.parse_envelope(frame)
        self._sequence(msg)
        params = ah.parse_parameters(msg)
        return await self._handle(msg, params)

    def _sequence(self, msg: ah.ClientMessage) -> None:
        if msg.id.lower() != self.session_id:
            raise ah.AudioHookError(ah.BAD_REQUEST, "id: not this session's Audiohook-Session-Id")
        if msg.seq != self.clientseq + 1:
            what = "a duplicate" if msg.seq <= self.clientseq else "out of order"
            raise ah.AudioHookError(
                ah.BAD_REQUEST, f"seq {msg.seq}: expected {self.clientseq + 1} ({what})"
            )
        if msg.serverseq > self.seq:
            raise ah.AudioHookError(
                ah.BAD_REQUEST, f"serverseq {msg.serverseq}: only {self.seq} messages were sent"
            )
        self.clientseq = msg.seq
        # Both sides count the same samples: a difference means frames went missing between
        # them (recorded and logged, not refused: the client's clock is not ours to judge).
        if self.opened:
            theirs = round(ah.parse_duration(msg.position) * ah.RATE)
            drift = abs(theirs - self.samples - self.discarded_samples)
            self.drift_samples = max(self.drift_samples, drift)

    async def _handle(self, msg: ah.ClientMessage, params: Any) -> bool:
        kind = msg.type
        if kind == "open":
            if self.opened:
                raise ah.AudioHookError(ah.CONFLICT, "a second open")
            await self._open(params)
            return False
        if kind == "close":
            await self._close()
            return True
        if not self.opened:
            raise ah.AudioHookError(ah.CONFLICT, f"{kind} before open")
        if kind == "ping":
            await self._send("pong", {})
        elif kind == "paused":
            self.client_paused = True
        elif kind in ("resumed", "discarded"):
            # The client dropped this much audio: our position skips it too, so it stays
            # the client's. (The detector runtime joins the audio either side of the gap: it
            # has no notion of one.)
            if kind == "resumed":
                self.client_paused = False
            self.discarded_samples += int(ah.parse_duration(params.discarded) * ah.RATE)
            await self._flush_block()
        elif kind == "error":
            self.client_errors += 1
            if self.client_errors > MAX_LOGGED_CLIENT_ERRORS:
                return False  # counted, not logged: a client cannot flood the log
            log.warning(
                "audiohook.client_error",
                session=self.session_id,
                code=params.code,
                message=params.message[:200],
                retry_after=params.retryAfter,
            )
        # update: the conversation's language changed; nothing here depends on it.
        return False

    async def _open(self, p: ah.OpenParameters) -> None:
        if p.organizationId.lower() != self.headers["audiohook-organization-id"].lower():
            raise ah.AudioHookError(
                ah.BAD_REQUEST,
                "organizationId does not match Audiohook-Organization-Id",
                reason="unauthorized",
            )
        media = ah.choose_media(p.media)
        if p.conversationId == ah.NULL_UUID:
            # Genesys's connection probe (when an integration is configured): answered,
            # and no session, no decision, nothing stored.
            self.probe = True
        else:
            await self._open_session(p)
        self.media = media
        if self.session is not None:
            sess = self.session
            # The internal channel (the agent) is analysed when negotiated (two channels),
            # and only while the call's consent to media analysis holds
            # (engine.streaming.tracks).
            self.blocks = PartyBlocks(
                ah.BLOCK_SAMPLES,
                agent="internal" in media.channels,
                consented=lambda: sess.context.consent.media_analysis,
                resampler=tw.Upsampler,
            )
        opened: dict[str, Any] = {"media": [media.wire()], "startPaused": False}
        if p.supportedLanguages:
            opened["supportedLanguages"] = []  # no transcription here
        await self._send("opened", opened)
        self.opened = True
        if self.early_event is not None:
            self._notify(self.early_event)
            self.early_event = None

    async def _open_session(self, p: ah.OpenParameters) -> None:
        ctx_input, control = ah.context_from_open(p)
        try:
            context = LiveContext.model_validate(ctx_input)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ah.AudioHookError(
                ah.BAD_REQUEST, f"context {where}: {err['msg']} (from customConfig/inputVariables)"
            ) from None
        session_id = control.get("session_id", p.conversationId)
        if not (0 < len(session_id) <= 128) or not all(
            c.isalnum() or c in "._:-" for c in session_id
        ):
            raise ah.AudioHookError(ah.BAD_REQUEST, "session_id: not a session id")
        try:
            self.session = await self.registry.open(
                session_id,
                protocol="audiohook",
                call_id=p.conversationId,
                context=context,
                policy=control.get("policy"),
                notify=self._notify,
            )
        except SessionLimitReached as exc:  # lost the race past the upgrade's check
            raise ah.AudioHookError(ah.TOO_MANY, exc.message) from None
        except SessionExists as exc:
            raise ah.AudioHookError(ah.CONFLICT, exc.message) from None
        except DetectorsUnavailable as exc:
            raise ah.AudioHookError(ah.UNAVAILABLE, exc.message) from None
        except LiveguardError as exc:  # the policy named does not apply, and the like
            raise ah.AudioHookError(ah.BAD_REQUEST, f"{exc.code}: {exc.message}") from None

    async def _audio(self, data: bytes) -> None:
        if not self.opened or self.media is None:
            raise ah.AudioHookError(ah.CONFLICT, "audio before opened")
        if self.closing:
            raise ah.AudioHookError(ah.CONFLICT, "audio after close")
        channels = ah.decode_frame(data, self.media)
        n = len(next(iter(channels.values())))
        self.samples += n
        if self.client_paused or self.backpressure.paused:
            self.dropped_frames += 1  # sent across the pause: counted, not analysed
            return
        if self.session is None or self.blocks is None:
            return  # a probe
        # The caller (external) and, when negotiated, the agent (internal): one frame
        # carries both, the agent's handed over first (engine.streaming.tracks).
        ready = self.blocks.add(AGENT, channels["internal"]) if "internal" in channels else []
        await self._push(ready + self.blocks.add(CALLER, channels["external"]))

    async def _flush_block(self) -> None:
        if self.blocks is not None:
            await self._push(self.blocks.flush())

    async def _push(self, blocks: list[tuple[str, np.ndarray]]) -> None:
        if not blocks or self.session is None:
            return
        for party, x in blocks:
            await self.registry.push_audio(self.session, x, party=party)
        if self.closing:
            return
        lag = self.registry.detector_lag_s()
        if self.backpressure.observe(lag, time.monotonic()):
            log.warning("audiohook.paused_for_backlog", session=self.session_id, lag_s=lag)
            await self._send("pause", {})
            self.resumer = asyncio.create_task(self._resume_later())

    async def _resume_later(self) -> None:
        # Until the hold has passed by time.monotonic(), not just one sleep of hold_s: a
        # single check after a timer that woke even slightly early (event loops count from
        # their own, coarser clock) would never send resume, and the paused (rightly
        # silent) client would be timed out.
        bp = self.backpressure
        while bp.paused and not self.closing:
            if bp.resume_due(time.monotonic()):
                await self._send("resume", {})
                return
            await asyncio.sleep(max(0.005, bp.remaining(time.monotonic())))

    async def _close(self) -> None:
        """The client's close transaction: the final decision (as a last ``event``), then
        ``closed``; the client then drops the socket."""
        self.closing = True
        await self._end(tell_client=True)
        await self._send("closed", {})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.outbox.join(), CLOSE_WAIT_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._until_disconnected(), CLOSE_WAIT_S)

    async def _until_disconnected(self) -> None:
        while (await self.ws.receive())["type"] != "websocket.disconnect":
            pass

    async def _disconnect(self, exc: ah.AudioHookError) -> None:
        """Tell the client why (``disconnect``), then answer its close transaction."""
        log.warning(
            "live.stream_refused",
            protocol="audiohook",
            session=self.session_id,
            code=exc.code,
            reason=exc.info,
        )
        try:
            await self._send("disconnect", {"reason": exc.reason, "info": exc.info})
        except StalledClient:
            return
        deadline = time.monotonic() + CLOSE_WAIT_S
        with contextlib.suppress(Exception):
            while (left := deadline - time.monotonic()) > 0:
                message = await asyncio.wait_for(self.ws.receive(), left)
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    continue  # audio in flight: the session is over
                frame = json.loads(text)
                if isinstance(frame, dict) and frame.get("type") == "close":
                    self.clientseq = max(self.clientseq, int(frame.get("seq", 0)))
                    await self._close()
                    return

    async def _end(self, *, tell_client: bool) -> None:
        if self.session is None:
            return
        sess = self.session
        previous = sess.decision.action.value if sess.decision else None
        try:
            await self._flush_block()
        finally:
            self.session = None
            decision = await self.registry.end(sess.id)
        if tell_client and decision is not None:
            await self._send("event", _entities(event_of(sess, decision, previous, True)))
        log.info(
            "live.stream_closed",
            protocol="audiohook",
            session=sess.id,
            position=ah.format_duration(self.samples + self.discarded_samples),
            discarded=ah.format_duration(self.discarded_samples),
            position_drift=ah.format_duration(self.drift_samples),
            dropped_frames=self.dropped_frames,
            pauses=self.backpressure.pauses,
            agent_not_analysed=ah.format_duration(self.blocks.agent_skipped if self.blocks else 0),
            client_errors=self.client_errors,
            events_lost=self.events_lost,
        )

    # --- the way back --------------------------------------------------------------------

    def _notify(self, event: dict[str, Any]) -> None:
        """A change of action → an ``event`` message with one ``liveguard_decision``
        entity. A client not reading loses events, never blocks the session."""
        if not self.opened:
            self.early_event = event  # the spec allows events only once the session is open
            return
        try:
            self.outbox.put_nowait(("event", _entities(event)))
        except asyncio.QueueFull:
            self.events_lost += 1

    async def _send(self, kind: str, parameters: dict[str, Any]) -> None:
        """Queue a message; a client that reads nothing for CLOSE_WAIT_S (its queue full, the
        socket's buffers too) is given up, so a stalled client never holds its handler."""
        try:
            await asyncio.wait_for(self.outbox.put((kind, parameters)), CLOSE_WAIT_S)
        except TimeoutError:
            raise StalledClient from None

    async def _send_loop(self) -> None:
        # One writer, so ``seq`` is the order on the wire; ``clientseq`` is the last
        # client message read when this one leaves.
        while True:
            kind, parameters = await self.outbox.get()
            try:
                self.seq += 1
                msg = ah.server_message(self.session_id, kind, self.seq, self.clientseq, parameters)
                with contextlib.suppress(Exception):
                    await self.ws.send_text(json.dumps(msg))
            finally:
                self.outbox.task_done()


def _entities(event: dict[str, Any]) -> dict[str, Any]:
    return {"entities": [{"type": ENTITY, "data": event}]}


def _headers(ws: WebSocket) -> dict[str, str]:
    """Lower-cased header names; repeated fields joined with ', ' (RFC 9421 §2.1)."""
    out: dict[str, str] = {}
    for k, v in ws.scope["headers"]:
        name, value = k.decode("latin-1").lower(), v.decode("latin-1").strip()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _is_uuid(value: str) -> bool:
    return re.fullmatch(ah.UUID, value) is not None


@router.websocket(ROUTE)
async def audiohook_stream(ws: WebSocket) -> None:
    await AudioHookStream(ws).run()
