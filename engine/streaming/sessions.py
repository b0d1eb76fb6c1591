"""The live-session registry: one entry per call being streamed to this replica.

A session has its call id, the policy chosen for it once at start (by ``applies_to`` from
channel and kind, or named and then held to the same ``applies_to`` check as a decision),
its context (set at start, replaced field by field with ``PUT /v1/sessions/{id}/context``)
and the latest signal of each detector. Audio goes to the detector runtime, whose
per-session buffers hold at most one hop and whose windows are released once processed:
no raw media is kept beyond the current window. Every hop's signals, every context
update, the start and the end are decided through ``Runtime.decide``, so each decision is
minimized and committed to the decision log like any other; a change of action is
published to the session's subscribers and handed to the protocol (``notify``).

Bounded: sessions per replica (``max_live_sessions``), subscribers per session, each
subscriber's queue (oldest dropped: an agent needs the latest state, not the history).
The detector runtime is not thread-safe: every call into it goes through one worker
thread (the "detector lane"), which also keeps inference off the event loop. Audio reaches
it through ``engine.streaming.pump`` (a backlog is the runtime's to schedule: riskiest
first, lowest-risk oldest dropped); subscribers on other replicas are told through
``engine.streaming.events``.

Slightly over ~400 lines on purpose: every protocol goes through this one registry, and
its open, hop, context, stage-2 and end paths share the session lock that orders a
session's decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import structlog
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.registry import discover
from detectors.runtime import Emission, RuntimeConfig, StreamingRuntime
from detectors.second_pass import SecondPass, split_detectors
from detectors.turn_taking import TurnTakingDetector
from engine.core.errors import LiveguardError, PolicyInvalid, RequestInvalid
from engine.core.models import (
    Consent,
    Decision,
    DecisionRequest,
    Device,
    Identity,
    Session,
    Transaction,
)
from engine.policy.selection import ensure_applies
from engine.service.runtime import Runtime
from engine.streaming.events import LocalBus, SessionBus
from engine.streaming.pump import AudioPump
from engine.streaming.stage2 import Stage2
from signals import Signal

log = structlog.get_logger("liveguard.live")

#: The party whose signals the decision is about: the caller (Twilio's inbound track).
CALLER = "remote"
#: The agent's party (Twilio's outbound track, AudioHook's internal channel, the native
#: protocol's agent): the name ``behavior.turn_taking`` reads the agent's turns under.
#: Its windows drive no decision of their own (``_absorb``).
AGENT = "agent"
#: Detectors that read the agent's audio (only under consent to media analysis): what they
#: hold is forgotten when that consent is withdrawn mid-call.
FED_BY_AGENT = (TurnTakingDetector.name,)
_STRICT = ConfigDict(frozen=True, extra="forbid")


class LiveContext(BaseModel):
    """What a decision knows about the call besides its signals (``engine.core.models``
    types, so a live decision's inputs are checked exactly like ``POST /v1/decisions``)."""

    model_config = _STRICT
    channel: Literal["conference", "support_call"]
    kind: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    participant: Literal["internal", "external"]
    consent: Consent = Consent()
    identity: Identity
    transaction: Transaction | None = None
    device: Device | None = None


class ContextUpdate(BaseModel):
    """``PUT /v1/sessions/{id}/context``: the sections sent replace the session's; a
    ``null`` transaction or device removes it. Channel and kind chose the policy at start
    and cannot change."""

    model_config = _STRICT
    participant: Literal["internal", "external"] | None = None
    consent: Consent | None = None
    identity: Identity | None = None
    transaction: Transaction | None = None
    device: Device | None = None

    def applied_to(self, ctx: LiveContext) -> LiveContext:
        merged = ctx.model_dump()
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None and name in ("participant", "consent", "identity"):
                raise RequestInvalid(f"{name}: may not be null (send the whole section)")
            merged[name] = value.model_dump() if isinstance(value, BaseModel) else value
        return LiveContext.model_validate(merged)


class DetectorsUnavailable(LiveguardError):
    code = "detectors_unavailable"
    http_status = 503


class SessionLimitReached(LiveguardError):
    code = "session_limit"
    http_status = 503


class SessionExists(LiveguardError):
    code = "session_exists"
    http_status = 409


class SessionUnknown(LiveguardError):
    code = "session_unknown"
    http_status = 404


class TooManySubscribers(LiveguardError):
    code = "too_many_subscribers"
    http_status = 429


#: One item on a subscriber's queue: an event, or None when the session has ended.
Event = dict[str, Any] | None


@dataclass(eq=False)
class LiveSession:
    id: str
    protocol: str
    call_id: str
    policy_id: str
    context: LiveContext
    #: The protocol's way back to the stream client (a Twilio mark), on a change of action.
    notify: Callable[[dict[str, Any]], None] | None = None
    signals: dict[str, Signal] = field(default_factory=dict)
    decision: Decision | None = None
    decisions: int = 0
    subscribers: set[asyncio.Queue[Event]] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False

    def request(self) -> DecisionRequest:
        c = self.context
        return DecisionRequest(
            session=Session(
                id=self.id,
                channel=c.channel,
                kind=c.kind,
                participant=c.participant,
                consent=c.consent,
            ),
            identity=c.identity,
            transaction=c.transaction,
            device=c.device,
            signals=tuple(self.signals.values()),
        )


def event_of(sess: LiveSession, d: Decision, previous: str | None, final: bool) -> dict[str, Any]:
    """What a subscriber (an agent's desktop) and the stream client are told."""
    return {
        "session_id": sess.id,
        "call_id": sess.call_id,
        "action": d.action.value,
        "previous_action": previous,
        "summary": d.summary,
        "risk": d.risk,
        "degraded": d.degraded,
        "decision_id": d.decision_id,
        "decided_at": d.decided_at,
        "policy": {"id": d.policy.id, "version": d.policy.version},
        "final": final,
    }


class LiveSessions:
    def __init__(
        self,
        rt: Runtime,
        *,
        max_sessions: int,
        max_subscribers: int,
        subscriber_queue: int = 32,
        detectors: list[str] | None = None,
        hop_ms: int = 1_000,
        registry: CollectorRegistry | None = None,
        bus: SessionBus | None = None,
    ) -> None:
        self.rt = rt
        #: Other replicas' subscribers (PostgreSQL), or nobody else (one replica).
        self.bus: SessionBus = bus or LocalBus()
        self._pump: AudioPump | None = None
        self.max_sessions = max_sessions
        self.max_subscribers = max_subscribers
        self.subscriber_queue = subscriber_queue
        self._detectors = detectors
        self._hop_ms = hop_ms
        self._registry = registry
        self._sessions: dict[str, LiveSession] = {}
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detectors")
        self.detector_runtime: StreamingRuntime | None = None
        self._loading: asyncio.Future[StreamingRuntime] | None = None
        # Stage 2 (second_pass obligations, raw-media escalation): engine.streaming.stage2.
        self.stage2 = Stage2(rt, self._in_lane, registry)
        # Context updates for sessions streaming here, sent by the replica a PUT reached.
        self.bus.serve_context(self._context_from_peer)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, *, preload: bool = False) -> None:
        """With ``preload`` the detectors load now, in the background (readiness and the
        other routes do not wait for them); otherwise on the first live session, so a
        replica that never streams never holds the models."""
        await self.bus.start()
        if preload:
            self._load()

    def _load(self) -> asyncio.Future[StreamingRuntime]:
        def build() -> StreamingRuntime:
            # Every registered detector: the first pass (LIVE_DETECTORS) runs on every
            # window, the rest wait for a second_pass obligation (detectors.second_pass).
            first, pool = split_detectors(discover(), self._detectors)
            settings = self.rt.settings
            drt = StreamingRuntime(
                first,
                RuntimeConfig(
                    hop_ms=self._hop_ms, max_pending=self.rt.settings.live_max_backlog_windows
                ),
                registry=self._registry,
                second_pass=SecondPass(
                    pool,
                    max_sessions=settings.max_second_pass_sessions,
                    max_windows=settings.second_pass_windows,
                    registry=self._registry,
                ),
            )
            drt.start()
            return drt

        if self._loading is None:
            self._loading = asyncio.ensure_future(self._in_lane(build))
        return self._loading

    async def _ready(self) -> StreamingRuntime:
        if self.detector_runtime is None:
            try:
                # Shielded: a session refused meanwhile does not cancel the others' load.
                self.detector_runtime = await asyncio.shield(self._load())
            except Exception as exc:
                self._loading = None  # the next session tries again
                log.error("live.detectors_failed", error=type(exc).__name__, detail=str(exc)[:300])
                raise DetectorsUnavailable(
                    "the detectors did not load; live sessions cannot be analysed"
                ) from None
        if self._pump is None:
            self._pump = AudioPump(self.detector_runtime, self._in_lane, self._absorb, first=AGENT)
        return self.detector_runtime

    async def stop(self) -> None:
        for sid in list(self._sessions):
            with contextlib.suppress(Exception):  # shutting down: each gets its final try
                await self.end(sid)
        if self._loading is not None and not self._loading.done():
            with contextlib.suppress(Exception):
                await self._loading
        if self._loading is not None and self._loading.done() and not self._loading.exception():
            await self._in_lane(self._loading.result().stop)
        self._lane.shutdown(wait=False, cancel_futures=True)
        await self.bus.stop()

    def __len__(self) -> int:
        return len(self._sessions)

    def detector_lag_s(self) -> float:
        """How far behind real time the detectors are on this replica (0.0 when idle)."""
        return self._pump.lag_s if self._pump is not None else 0.0

    def get(self, session_id: str) -> LiveSession:
        sess = self._sessions.get(session_id)
        if sess is None:
            raise SessionUnknown(
                f"no live session {session_id!r} on this replica (ended, or never started)"
            )
        return sess

    async def _in_lane(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._lane, fn, *args)

    # --- sessions ------------------------------------------------------------------------

    async def open(
        self,
        session_id: str,
        *,
        protocol: str,
        call_id: str,
        context: LiveContext,
        policy: str | None = None,
        notify: Callable[[dict[str, Any]], None] | None = None,
    ) -> LiveSession:
        """Register a session (within the replica's limit), choose its policy, decide once."""
        if len(self._sessions) >= self.max_sessions:
            raise SessionLimitReached(
                f"this replica streams {self.max_sessions} sessions already (max_live_sessions)"
            )
        if session_id in self._sessions:
            raise SessionExists(f"session {session_id!r} is already streaming")
        drt = await self._ready()
        sess = LiveSession(session_id, protocol, call_id, "", context, notify)
        req = sess.request().model_copy(update={"policy": policy})
        pid = self.rt.select(req)
        if policy:
            with contextlib.suppress(PolicyInvalid):  # a broken policy decides by fail_mode
                ensure_applies(self.rt.repo.get(pid).manifest, req)
        sess.policy_id = pid
        self._sessions[session_id] = sess  # the slot is held from here on
        try:
            if not await self.bus.claim(session_id, protocol):
                raise SessionExists(f"session {session_id!r} is streaming on another replica")
            # Without consent to media analysis the media detectors never read its audio.
            media = context.consent.media_analysis
            await self._in_lane(functools.partial(drt.open_session, session_id, media=media))
            await self._decide(sess, "start")
        except BaseException:
            self._sessions.pop(session_id, None)
            self.bus.release(session_id)
            self.stage2.discard(session_id)
            with contextlib.suppress(Exception):
                await self._in_lane(drt.close_session, session_id)
            raise
        log.info("live.started", session=session_id, protocol=protocol, policy=pid)
        return sess

    async def push_audio(self, sess: LiveSession, samples: np.ndarray, party: str = CALLER) -> None:
        """16 kHz mono float32 of one party; windows that fill are processed (every ready
        window of every session, micro-batched) and their sessions re-decided."""
        pump = self._pump
        assert pump is not None
        if sess.ended:
            return
        if party == CALLER:
            await self.stage2.feed(sess, samples)  # kept only while an escalation captures
        pump.stage(sess.id, party, samples)  # decided when the pump has run its window

    async def push_signals(self, sess: LiveSession, signals: list[Signal]) -> Decision | None:
        """Signals computed at the edge (``feature_only_cloud``): the latest of each name
        replaces the session's, then the session is re-decided (``Runtime.decide`` keeps
        only the names the policy declares)."""
        if sess.ended:
            return None
        for s in signals:
            sess.signals[s.name] = s
        return await self._decide(sess, "edge")

    async def push_series(
        self, sess: LiveSession, name: str, times_ms: np.ndarray, values: np.ndarray
    ) -> None:
        """A feature series from the edge (e.g. ``mouth_openness``), read by the detectors
        at the session's next windows; bounded by the runtime (``series_keep_ms``)."""
        drt = self.detector_runtime
        if sess.ended or drt is None:
            return
        await self._in_lane(drt.push_series, sess.id, name, times_ms, values)

    async def _absorb(self, emissions: list[Emission], windows: list[tuple[str, str, int]]) -> None:
        """A batch's signals into their sessions; one ``hop`` decision per session whose
        caller window was in the batch (the runtime takes one window per session a batch),
        whether or not it gave a signal (without consent to media analysis most give none).
        An agent window updates the detectors' state (turn-taking) and its signals join
        the session's, decided with the caller's next window: a decision per agent window
        would double the decisions and the decision log's writes for nothing the caller
        did."""
        fresh: dict[str, list[Signal]] = defaultdict(list)
        hop = dict.fromkeys(sid for sid, party, _ in windows if party == CALLER)
        for e in emissions:
            if _about_the_call(e):
                fresh[e.session_id].append(e.signal)
        for sid in dict.fromkeys([*fresh, *hop]):
            sess = self._sessions.get(sid)
            if sess is None or sess.ended:
                continue
            for s in fresh.get(sid, ()):
                sess.signals[s.name] = s  # the latest of each detector: bounded by their number
            if sid in hop:
                await self._decide(sess, "hop")

    async def update_context(self, session_id: str, update: ContextUpdate) -> Decision:
        """Applied here if the session streams here; otherwise forwarded to the replica it
        streams on (PostgreSQL: ``engine.streaming.events``), which applies it the same way
        and answers with the decision; SessionUnknown if it streams nowhere."""
        sess = self._sessions.get(session_id)
        if sess is not None:
            return await self._apply_context(sess, update)
        forwarded = await self.bus.forward_context(
            session_id,
            update.model_dump(mode="json", exclude_unset=True),
            self.rt.settings.live_forward_timeout_s,
        )
        if forwarded is None:
            raise SessionUnknown(
                f"no live session {session_id!r} on any replica (ended, or never started)"
            )
        return Decision.model_validate_json(forwarded)

    async def _context_from_peer(self, session_id: str, data: dict[str, Any]) -> str:
        """An update another replica forwarded (its caller authorized there, role
        ``decide``): validated again by the model, and applied only to a session streaming
        here, never forwarded on. The decision as JSON, for the asking replica."""
        try:
            update = ContextUpdate.model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc) from None
        decision = await self._apply_context(self.get(session_id), update)
        return decision.model_dump_json()

    async def _apply_context(self, sess: LiveSession, update: ContextUpdate) -> Decision:
        before = sess.context.consent.media_analysis
        try:
            sess.context = update.applied_to(sess.context)
        except ValidationError as exc:
            raise _invalid(exc) from None
        now = sess.context.consent.media_analysis
        if before and not now:
            await self._forget_consented(sess)
        elif now and not before:
            await self._consent_granted(sess)
        return await self._decide(sess, "context")

    async def _consent_granted(self, sess: LiveSession) -> None:
        """Consent to media analysis given mid-call: the media detectors start on the
        audio from here on (``StreamingRuntime.set_media_consent``), and media signals
        the session holds from before it (an edge's, sent while the decision set them
        aside) are dropped rather than decided on now."""
        for name in [n for n, s in sess.signals.items() if s.media_derived]:
            sess.signals.pop(name, None)
        if self._pump is not None:
            await self._pump.media_consent(sess.id, True)

    async def _forget_consented(self, sess: LiveSession) -> None:
        """Consent to media analysis withdrawn: what was measured from the agent's audio
        under it (the reply times turn-taking keeps) is forgotten, not signalled on. Media
        signals the decision sets aside itself; this one it would not (it is a behavior
        signal), so it goes here."""
        for name in FED_BY_AGENT:
            sess.signals.pop(name, None)
        if self._pump is not None:
            # The media detectors stop reading its audio and forget what they hold.
            await self._pump.media_consent(sess.id, False)
            await self._pump.reset(sess.id, list(FED_BY_AGENT))

    async def end(self, session_id: str) -> Decision | None:
        """The final partial window, the final decision (always stored), subscribers told;
        then nothing of the session is left in the registry or the detector runtime."""
        sess = self._sessions.get(session_id)
        if sess is None or sess.ended:
            return None
        sess.ended = True
        decision: Decision | None = None
        try:
            assert self._pump is not None
            emissions = await self._pump.close(session_id)
            for e in emissions:
                if _about_the_call(e):
                    sess.signals[e.signal.name] = e.signal
            decision = await self._decide(sess, "final", final=True)
        finally:
            self.bus.release(session_id)  # after the final event: other replicas' feeds end
            with contextlib.suppress(Exception):  # a failed excerpt store is logged there
                await self.stage2.ended(sess)
            self._sessions.pop(session_id, None)
            for q in list(sess.subscribers):
                _offer(q, None)
            sess.subscribers.clear()
            log.info(
                "live.ended",
                session=session_id,
                decisions=sess.decisions,
                action=decision.action.value if decision else None,
            )
        return decision

    # --- deciding and publishing -----------------------------------------------------------

    async def _decide(self, sess: LiveSession, label: str, *, final: bool = False) -> Decision:
        async with sess.lock:  # in order, so "a change of action" is against the last one
            decision, _ = await self.rt.decide(
                sess.request(), policy_id=sess.policy_id, request_id=f"live:{label}"
            )
            previous = sess.decision.action.value if sess.decision else None
            sess.decision = decision
            sess.decisions += 1
            if self._pump is not None:  # riskier sessions' windows are served first
                self._pump.set_risk(sess.id, decision.risk)
            if not final and self.detector_runtime is not None:
                await self.stage2.after_decision(sess, self.detector_runtime, decision)
            if final or decision.action.value != previous:
                event = event_of(sess, decision, previous, final)
                for q in list(sess.subscribers):
                    _offer(q, event)
                self.bus.publish(sess.id, sess.decisions, event)
                if sess.notify is not None and not final:
                    try:
                        sess.notify(event)
                    except Exception as exc:  # the stream client's problem, not the session's
                        log.warning("live.notify_failed", session=sess.id, error=type(exc).__name__)
            return decision

    def subscribe(self, session_id: str) -> tuple[LiveSession, asyncio.Queue[Event]]:
        sess = self.get(session_id)
        if len(sess.subscribers) >= self.max_subscribers:
            raise TooManySubscribers(
                f"session {session_id!r} has {self.max_subscribers} subscribers already"
            )
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=self.subscriber_queue)
        sess.subscribers.add(q)
        if sess.decision is not None:  # the current state first
            _offer(q, event_of(sess, sess.decision, None, False))
        return sess, q

    @staticmethod
    def unsubscribe(sess: LiveSession, q: asyncio.Queue[Event]) -> None:
        sess.subscribers.discard(q)


def _about_the_call(e: Emission) -> bool:
    """Whether a window's signal may join the decision about the caller: every signal of
    the caller's windows; of the agent's, only those not derived from a voice (behavior,
    session), since an audio signal of the agent's window describes the agent's voice (a
    detector without a party filter), not the caller's."""
    return e.party == CALLER or not e.signal.media_derived


def _invalid(exc: ValidationError) -> RequestInvalid:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return RequestInvalid(f"{where}: {err['msg']}")


def _offer(q: asyncio.Queue[Event], item: Event) -> None:
    """Put without waiting: a slow subscriber loses its oldest events, never blocks a call."""
    while True:
        try:
            q.put_nowait(item)
            return
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
