"""Live calls: Twilio Media Streams in, the session's decisions out (context, SSE).

``wss://…/v1/streams/twilio``: Twilio connects, sends ``connected`` then ``start``, and
streams μ-law. Twilio sends no custom headers and its ``<Stream url>`` takes no query
string, so the API key travels as the ``liveguard_key`` custom parameter (never logged);
a client that can send headers may use ``Authorization: Bearer`` on the handshake instead.
The key needs role ``decide``: a stream makes decisions, exactly what that role may do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import numpy as np
import structlog
from fastapi import APIRouter, Depends, Path, Request, WebSocket
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from engine.api.auth import authorize_stream, bearer_key, require
from engine.api.routes.common import errors, json_response
from engine.api.schemas import ErrorBody
from engine.core.errors import LiveguardError
from engine.store.keys import Principal
from engine.streaming import twilio as tw
from engine.streaming.sessions import (
    AGENT,
    CALLER,
    ContextUpdate,
    DetectorsUnavailable,
    LiveContext,
    LiveSession,
    LiveSessions,
    SessionExists,
    SessionLimitReached,
    SessionUnknown,
)
from engine.streaming.tracks import PartyBlocks

log = structlog.get_logger("liveguard.live")
router = APIRouter(tags=["live"])

SessionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:\-]{1,128}$")]
#: Decoded audio is handed to the detector lane in blocks of this many 8 kHz samples
#: (100 ms): fewer thread hops than one per 20 ms chunk, still well within a window.
_BLOCK = 800
#: Twilio's tracks as the runtime's parties: the caller's voice (inbound) and what is played
#: to the caller (outbound: the agent, or a bot), the latter for turn-taking only.
_PARTIES = {"inbound": CALLER, "outbound": AGENT}


def live(request: Request | WebSocket) -> LiveSessions:
    return request.app.state.live  # type: ignore[no-any-return]


# --- context and events -------------------------------------------------------------------


@router.put(
    "/v1/sessions/{session_id}/context",
    summary="Replace sections of a live session's context; the session is re-decided",
    # On a replica other than the session's the update is forwarded to it (PostgreSQL):
    # 504 when that replica does not answer within live_forward_timeout_s.
    responses={
        **errors(401, 403, 404, 413, 422, 503),
        504: {
            "model": ErrorBody,
            "description": "The replica streaming the session did not answer in time.",
        },
    },
)
async def put_context(
    request: Request,
    session_id: SessionId,
    body: ContextUpdate,
    _: Principal = Depends(require("decide")),
) -> Response:
    decision = await live(request).update_context(session_id, body)
    return json_response(decision.model_dump_json())


@router.get(
    "/v1/sessions/{session_id}/events",
    summary="Server-Sent Events: each change of the live session's action, with its summary",
    responses=errors(401, 403, 404),
)
async def session_events(
    request: Request,
    session_id: SessionId,
    _: Principal = Depends(require("review", "decide")),
) -> StreamingResponse:
    registry = live(request)
    heartbeat = request.app.state.runtime.settings.sse_heartbeat_s
    try:
        sess, queue = registry.subscribe(session_id)
        release: Callable[[], None] = functools.partial(registry.unsubscribe, sess, queue)
    except SessionUnknown:
        # Not streaming here: on PostgreSQL it may stream on another replica.
        follow = await registry.bus.follow(session_id, registry.subscriber_queue)
        if follow is None:
            raise
        queue = follow.queue
        release = functools.partial(registry.bus.unfollow, follow)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b": liveguard session events\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), heartbeat)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if item is None:
                    yield b"event: end\ndata: {}\n\n"
                    return
                kind = "final" if item["final"] else "decision"
                yield f"event: {kind}\ndata: {json.dumps(item)}\n\n".encode()
        finally:
            release()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- Twilio Media Streams -------------------------------------------------------------------


class _RateLimit:
    """At most ``limit`` messages in any one-second window of the stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window = time.monotonic()
        self.count = 0

    def hit(self) -> None:
        now = time.monotonic()
        if now - self.window >= 1.0:
            self.window, self.count = now, 0
        self.count += 1
        if self.count > self.limit:
            raise tw.ProtocolError(tw.CLOSE_POLICY, f"more than {self.limit} messages per second")


class TwilioStream:
    """One Twilio Media Stream: its state machine from ``connected`` to ``stop``."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.registry = live(ws)
        self.settings = ws.app.state.runtime.settings
        self.session: LiveSession | None = None
        self.stream_sid = ""
        self.marks = False
        self.tracks: dict[str, tw.ChunkOrder] = {}
        self.blocks: PartyBlocks | None = None
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
        self.rate = _RateLimit(self.settings.stream_max_messages_per_s)
        self.media = 0
        self.dtmf = 0

    async def run(self) -> None:
        await self.ws.accept()
        sender = asyncio.create_task(self._send_loop())
        code, reason = tw.CLOSE_NORMAL, "stream stopped"
        try:
            await asyncio.wait_for(self._until_started(), self.settings.stream_start_timeout_s)
            idle = self.settings.stream_idle_timeout_s
            while not await self._step(await self._receive(idle)):
                pass
        except TimeoutError:
            code, reason = tw.CLOSE_POLICY, "no start message in time"
        except tw.ProtocolError as exc:
            code, reason = exc.code, exc.reason
        except WebSocketDisconnect:
            code, reason = 0, ""
        except SessionLimitReached as exc:
            code, reason = tw.CLOSE_TRY_AGAIN, exc.message[:120]
        except DetectorsUnavailable as exc:
            code, reason = tw.CLOSE_INTERNAL, exc.message[:120]
        except LiveguardError as exc:  # refused at start: auth, policy, session id
            code, reason = tw.CLOSE_POLICY, f"{exc.code}: {exc.message}"[:120]
        except Exception as exc:  # our fault: this stream ends, the service goes on
            log.error("live.stream_failed", error=type(exc).__name__, detail=str(exc)[:300])
            code, reason = tw.CLOSE_INTERNAL, "internal error"
        finally:
            # Whatever happened on the wire, a started session gets its final decision; the
            # shield keeps a cancelled handler (server shutdown) from leaking it.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._end())
            sender.cancel()
        if code and reason != "":
            if code != tw.CLOSE_NORMAL:
                log.warning("live.stream_refused", protocol="twilio", code=code, reason=reason)
            with contextlib.suppress(Exception):
                if self.ws.application_state != WebSocketState.DISCONNECTED:
                    await self.ws.close(code, reason)

    async def _receive(self, idle_s: float) -> dict[str, Any]:
        """The next message; a stream silent for ``idle_s`` gives its session slot back
        (Twilio sends a media frame every 20 ms while a call is up)."""
        try:
            # A timeout scope, not wait_for: wait_for wraps every message in a new task.
            async with asyncio.timeout(idle_s):
                return await self.ws.receive()
        except TimeoutError:
            raise tw.ProtocolError(tw.CLOSE_POLICY, f"no message for {idle_s:g} s") from None

    async def _until_started(self) -> None:
        while self.session is None:
            if await self._step(await self.ws.receive()):
                return

    async def _step(self, message: dict[str, Any]) -> bool:
        """Handle one WebSocket message; True when the stream is over."""
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:
            raise tw.ProtocolError(
                tw.CLOSE_UNSUPPORTED, "binary frames are not part of Twilio Media Streams"
            )
        # uvicorn's ws_max_size refuses larger frames before they are read whole (serve sets
        # it); this holds when the app runs under a server configured otherwise.
        if len(text) > self.settings.stream_max_frame_bytes:
            raise tw.ProtocolError(tw.CLOSE_TOO_BIG, "message larger than stream_max_frame_bytes")
        self.rate.hit()
        try:
            frame = json.loads(text)
        except ValueError:
            raise tw.ProtocolError(tw.CLOSE_INVALID, "not a JSON message") from None
        if not isinstance(frame, dict):
            raise tw.ProtocolError(tw.CLOSE_INVALID, "a message must be a JSON object")
        event = frame.get("event")
        if event == "connected":
            return False
        if event == "start":
            await self._start(frame)
            return False
        if event in ("media", "dtmf", "mark", "stop") and self.session is None:
            raise tw.ProtocolError(tw.CLOSE_POLICY, f"{event} before start")
        if event == "media":
            await self._media(frame)
            return False
        if event == "dtmf":
            self.dtmf += 1  # counted only: digits may be a PIN, never kept
            return False
        if event == "mark":
            return False  # Twilio's echo of a mark we sent: nothing to do
        if event == "stop":
            return True
        shown = event if isinstance(event, str) else type(event).__name__
        raise tw.ProtocolError(tw.CLOSE_POLICY, f"unknown event {shown[:40]!r}")

    async def _start(self, frame: dict[str, Any]) -> None:
        if self.session is not None:
            raise tw.ProtocolError(tw.CLOSE_POLICY, "a second start on one stream")
        start = tw.parse(tw.StartMessage, frame).start  # type: ignore[attr-defined]
        tw.check_media_format(start.mediaFormat)
        ctx_input, control = tw.context_from_parameters(start.customParameters)
        key = control.get("liveguard_key") or self._header_key()
        await authorize_stream(self.ws, key, "/v1/streams/twilio")
        try:
            context = LiveContext.model_validate(ctx_input)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise tw.ProtocolError(
                tw.CLOSE_INVALID, f"customParameters: {where}: {err['msg']}"
            ) from None
        session_id = control.get("session_id", start.callSid)
        if not (0 < len(session_id) <= 128) or not all(
            c.isalnum() or c in "._:-" for c in session_id
        ):
            raise tw.ProtocolError(
                tw.CLOSE_INVALID, "customParameters.session_id: not a session id"
            )
        self.stream_sid = start.streamSid
        self.marks = control.get("marks") == "true"
        self.tracks = {t: tw.ChunkOrder() for t in start.tracks}
        try:
            self.session = await self.registry.open(
                session_id,
                protocol="twilio",
                call_id=start.callSid,
                context=context,
                policy=control.get("policy"),
                notify=self._notify if self.marks else None,
            )
        except SessionExists as exc:
            raise tw.ProtocolError(tw.CLOSE_POLICY, exc.message) from None
        sess = self.session
        # The outbound track is analysed when the stream carries it (``both_tracks``), and
        # only while the call's consent to media analysis holds (engine.streaming.tracks).
        self.blocks = PartyBlocks(
            _BLOCK,
            agent="outbound" in self.tracks,
            consented=lambda: sess.context.consent.media_analysis,
            resampler=tw.Upsampler,
        )

    def _header_key(self) -> str | None:
        for k, v in self.ws.scope["headers"]:
            if k == b"authorization":
                return bearer_key(v.decode("latin-1"))
        return None

    async def _media(self, frame: dict[str, Any]) -> None:
        media = tw.parse(tw.MediaMessage, frame).media  # type: ignore[attr-defined]
        order = self.tracks.get(media.track)
        if order is None:
            raise tw.ProtocolError(
                tw.CLOSE_POLICY, f"media.track: {media.track} was not in start.tracks"
            )
        data = tw.decode_payload(media.payload)
        self.media += 1
        for chunk in order.add(int(media.chunk), data):
            await self._audio(media.track, chunk)

    async def _audio(self, track: str, chunk: bytes) -> None:
        # Both tracks, each in its own blocks and resampler; the agent's (outbound) blocks
        # reach the runtime before the caller's of the same span (engine.streaming.tracks).
        if self.blocks is not None:
            await self._push(self.blocks.add(_PARTIES[track], tw.mulaw_decode(chunk)))

    async def _push(self, blocks: list[tuple[str, np.ndarray]]) -> None:
        if self.session is None:
            return
        for party, x in blocks:
            await self.registry.push_audio(self.session, x, party=party)

    async def _end(self) -> None:
        if self.session is None:
            return
        sess = self.session
        try:
            for track in sorted(self.tracks, reverse=True):  # outbound (the agent's) first
                for chunk in self.tracks[track].flush():
                    await self._audio(track, chunk)
            if self.blocks is not None:
                await self._push(self.blocks.flush())
        finally:
            self.session = None
            await self.registry.end(sess.id)
        log.info(
            "live.stream_closed",
            protocol="twilio",
            session=sess.id,
            media=self.media,
            dtmf=self.dtmf,
            gaps=sum(o.gaps for o in self.tracks.values()),
            discarded=sum(o.discarded for o in self.tracks.values()),
            agent_not_analysed_s=round(self.blocks.agent_skipped / 8000, 2) if self.blocks else 0,
        )

    def _notify(self, event: dict[str, Any]) -> None:
        """A change of action → a Twilio ``mark`` named ``liveguard:<action>:<decision_id>``.
        Marks are the one message a Twilio stream accepts that carries a name and plays no
        audio; Twilio echoes it back once the audio before it has played."""
        mark = {
            "event": "mark",
            "streamSid": self.stream_sid,
            "mark": {"name": f"liveguard:{event['action']}:{event['decision_id']}"},
        }
        with contextlib.suppress(asyncio.QueueFull):  # a client not reading loses marks
            self.outbox.put_nowait(json.dumps(mark))

    async def _send_loop(self) -> None:
        while True:
            text = await self.outbox.get()
            with contextlib.suppress(Exception):
                await self.ws.send_text(text)


@router.websocket("/v1/streams/twilio")
async def twilio_stream(ws: WebSocket) -> None:
    await TwilioStream(ws).run()
