"""The native edge protocol at ``wss://…/v1/streams/liveguard`` (README, "Native protocol").

Authentication is ``Authorization: Bearer`` on the handshake (role ``decide``, as for
Twilio: a stream makes decisions). The connection is accepted first so that a refusal can
say why in an ``error`` message before the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import numpy as np
import structlog
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from engine.api.auth import authorize_stream, bearer_key
from engine.core.errors import LiveguardError
from engine.streaming import native as nv
from engine.streaming.native import Code, NativeError
from engine.streaming.sessions import (
    AGENT,
    DetectorsUnavailable,
    LiveSession,
    LiveSessions,
    SessionExists,
    SessionLimitReached,
    event_of,
)
from engine.streaming.tracks import PartyBlocks
from governance.dataflow import Pattern

log = structlog.get_logger("liveguard.live")
router = APIRouter(tags=["live"])

CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN, CLOSE_INTERNAL = (
    1000,
    1008,
    1009,
    1013,
    1011,
)
#: Audio is handed to the detector lane in blocks of at least this many samples (100 ms):
#: an SDK may send 10 ms frames without costing a thread hop each.
_BLOCK = 1_600


class _Closing(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:123].decode(errors="ignore")


class NativeStream:
    """One native connection: ``start`` → audio, features, ``context`` → ``end``."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.registry: LiveSessions = ws.app.state.live
        self.settings = ws.app.state.runtime.settings
        self.session: LiveSession | None = None
        self.parties: dict[int, str] = {}
        self.raw_allowed = True
        self.declared: frozenset[str] = frozenset()
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        self.errors = 0
        self.window = time.monotonic()
        self.count = 0
        self.rate_told = False
        self.blocks: PartyBlocks | None = None
        self.frames = 0
        # ``started`` carries the first decision: changes are pushed only after it.
        self.announced = False

    # --- the connection -----------------------------------------------------------------

    async def run(self) -> None:
        await self.ws.accept()
        sender = asyncio.create_task(self._send_loop())
        code, reason = CLOSE_NORMAL, "ended"
        try:
            await self._authenticate()
            await asyncio.wait_for(self._until_started(), self.settings.stream_start_timeout_s)
            while not await self._step(await self._receive(self.settings.stream_idle_timeout_s)):
                pass
        except TimeoutError:
            await self._error(NativeError(Code.invalid, "no start message in time", "type"))
            code, reason = CLOSE_POLICY, "no start in time"
        except _Closing as exc:
            code, reason = exc.code, exc.reason
        except WebSocketDisconnect:
            code, reason = 0, ""
        except Exception as exc:  # our fault: this stream ends, the service goes on
            log.error("live.stream_failed", error=type(exc).__name__, detail=str(exc)[:300])
            with contextlib.suppress(Exception):
                await self._send(nv.error(Code.internal, "internal error", fatal=True))
            code, reason = CLOSE_INTERNAL, "internal error"
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._end())
            # What is queued (the final decision, ended) goes out before the close.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain(), 2.0)
            sender.cancel()
        if code:
            if code not in (CLOSE_NORMAL,):
                log.warning("live.stream_refused", protocol="native", code=code, reason=reason)
            with contextlib.suppress(Exception):
                if self.ws.application_state != WebSocketState.DISCONNECTED:
                    await self.ws.close(code, reason)

    async def _authenticate(self) -> None:
        key = None
        for k, v in self.ws.scope["headers"]:
            if k == b"authorization":
                key = bearer_key(v.decode("latin-1"))
        try:
            await authorize_stream(self.ws, key, "/v1/streams/liveguard")
        except LiveguardError as exc:
            code = Code.forbidden if exc.http_status == 403 else Code.unauthenticated
            await self._send(nv.error(code, exc.message, fatal=True))
            raise _Closing(CLOSE_POLICY, exc.code) from None

    async def _receive(self, idle_s: float) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.ws.receive(), idle_s)
        except TimeoutError:
            raise _Closing(CLOSE_POLICY, f"no message for {idle_s:g} s") from None

    async def _until_started(self) -> None:
        while self.session is None:
            if await self._step(await self.ws.receive()):
                return

    async def _step(self, message: dict[str, Any]) -> bool:
        """One WebSocket message; True when the stream is over. Bad input is answered."""
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        try:
            if not self._within_rate():
                return False
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                return await self._text(text)
            if data is not None:
                await self._audio(data)
            return False
        except NativeError as exc:
            await self._error(exc)
            return False

    def _within_rate(self) -> bool:
        """At most STREAM_MAX_MESSAGES_PER_S per second; past it messages are dropped, and
        the client is told once per second (not once per dropped message)."""
        now = time.monotonic()
        if now - self.window >= 1.0:
            self.window, self.count, self.rate_told = now, 0, False
        self.count += 1
        if self.count <= self.settings.stream_max_messages_per_s:
            return True
        if not self.rate_told:
            self.rate_told = True
            limit = self.settings.stream_max_messages_per_s
            raise NativeError(Code.rate_limited, f"more than {limit} messages per second: dropped")
        return False

    async def _error(self, exc: NativeError) -> None:
        self.errors += 1
        await self._send(exc.wire())
        if exc.fatal:
            raise _Closing(CLOSE_TRY_AGAIN if exc.code is Code.busy else CLOSE_POLICY, exc.code)
        if self.errors >= nv.MAX_ERRORS:
            raise _Closing(CLOSE_POLICY, f"{nv.MAX_ERRORS} errors on one stream")

    # --- messages -------------------------------------------------------------------------

    async def _text(self, text: str) -> bool:
        msg = nv.parse_text(text)
        if isinstance(msg, nv.Start):
            await self._start(msg)
            return False
        if self.session is None:
            raise NativeError(Code.not_started, f"{msg.type} before start", "type")
        if isinstance(msg, nv.End):
            return True
        if isinstance(msg, nv.ContextMessage):
            try:
                await self.registry.update_context(self.session.id, msg.update)
            except LiveguardError as exc:
                raise NativeError(Code.invalid, exc.message, "update") from None
        elif isinstance(msg, nv.SignalsMessage):
            await self._signals(msg)
        elif isinstance(msg, nv.SeriesMessage):
            t, v = nv.check_series(msg)
            await self.registry.push_series(self.session, msg.name, t, v)
        elif isinstance(msg, nv.EmbeddingMessage):
            raise NativeError(
                Code.unsupported,
                "no registered detector consumes edge embeddings (audio.voice_consistency "
                "computes its own from the audio); send audio or detector signals",
                "type",
            )
        return False

    async def _start(self, msg: nv.Start) -> None:
        if self.session is not None:
            raise NativeError(Code.duplicate_start, "this stream has started already", "type")
        parties = nv.party_map(msg)
        session_id = msg.session_id or msg.call_id
        try:
            self.session = await self.registry.open(
                session_id,
                protocol="native",
                call_id=msg.call_id,
                context=msg.context,
                policy=msg.policy,
                notify=self._notify,
            )
        except SessionLimitReached as exc:
            raise NativeError(Code.busy, exc.message, fatal=True) from None
        except SessionExists as exc:
            raise NativeError(Code.session_exists, exc.message, "session_id") from None
        except DetectorsUnavailable as exc:
            raise NativeError(Code.detectors_unavailable, exc.message) from None
        except LiveguardError as exc:  # the policy: unknown, or does not apply
            raise NativeError(Code.policy, f"{exc.code}: {exc.message}", "policy") from None
        self.parties = parties
        sess = self.session
        # The declared agent party is analysed (for turn-taking), and only while the call's
        # consent to media analysis holds (engine.streaming.tracks).
        self.blocks = PartyBlocks(
            _BLOCK,
            agent=AGENT in parties.values(),
            consented=lambda: sess.context.consent.media_analysis,
        )
        policy = self.registry.rt.repo.get(self.session.policy_id)
        # feature_only_cloud: raw media stays on the device; only features may come here.
        self.raw_allowed = policy.dataflow.pattern is not Pattern.feature_only_cloud
        self.declared = frozenset(
            f[len("signals.") :]
            for f in policy.dataflow.allowed_fields()
            if f.startswith("signals.")
        )
        assert self.session.decision is not None
        d = self.session.decision
        await self._send(
            {
                "v": nv.VERSION,
                "type": "started",
                "session_id": self.session.id,
                "call_id": msg.call_id,
                "policy": {"id": d.policy.id, "version": d.policy.version},
                "raw_audio": self.raw_allowed,
                "signals": sorted(self.declared),
                "parties": [p.model_dump() for p in msg.parties],
                "decision": nv.decision_message(_event(self.session, d)),
            }
        )
        self.announced = True

    async def _signals(self, msg: nv.SignalsMessage) -> None:
        assert self.session is not None
        used = [s for s in msg.signals if s.name in self.declared]
        ignored = [i for i, s in enumerate(msg.signals) if s.name not in self.declared]
        if used:
            await self.registry.push_signals(self.session, used)
        if ignored:
            i = ignored[0]
            raise NativeError(
                Code.signal_not_declared,
                f"{len(ignored)} signal(s) ignored: the policy does not read "
                f"{msg.signals[i].name!r}",
                f"signals.{i}.name",
            )

    async def _audio(self, data: bytes) -> None:
        if self.session is None:
            raise NativeError(Code.not_started, "audio before start")
        if not self.raw_allowed:
            raise NativeError(
                Code.raw_media_not_allowed,
                "this session's policy is feature_only_cloud: raw audio stays on the device; "
                "send signals or series",
            )
        party, samples = nv.parse_audio(data, self.parties)
        self.frames += 1
        if self.blocks is not None:
            # Each party in its own blocks; the agent's reach the runtime before the
            # caller's of the same span (engine.streaming.tracks).
            await self._push(self.blocks.add(party, samples))

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
            if self.blocks is not None:
                await self._push(self.blocks.flush())
        finally:
            self.session = None
            decision = await self.registry.end(sess.id)
        if decision is not None:
            event = _event(sess, decision, final=True)
            await self._send(
                {
                    "v": nv.VERSION,
                    "type": "ended",
                    "session_id": sess.id,
                    "decision": nv.decision_message(event),
                }
            )
        log.info(
            "live.stream_closed",
            protocol="native",
            session=sess.id,
            frames=self.frames,
            agent_not_analysed_s=round(self.blocks.agent_skipped / 16_000, 2) if self.blocks else 0,
        )

    # --- the way back ----------------------------------------------------------------------

    def _notify(self, event: dict[str, Any]) -> None:
        if not self.announced:  # the start decision: sent in ``started``
            return
        with contextlib.suppress(asyncio.QueueFull):  # a client not reading loses decisions
            self.outbox.put_nowait(json.dumps(nv.decision_message(event)))

    async def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(json.dumps(message))

    async def _drain(self) -> None:
        await self.outbox.join()

    async def _send_loop(self) -> None:
        while True:
            text = await self.outbox.get()
            try:
                await self.ws.send_text(text)
            except Exception:
                return
            finally:
                self.outbox.task_done()


def _event(sess: LiveSession, d: Any, final: bool = False) -> dict[str, Any]:
    return event_of(sess, d, None, final)


@router.websocket("/v1/streams/liveguard")
async def native_stream(ws: WebSocket) -> None:
    await NativeStream(ws).run()
