"""Stage 2 live: a session's ``second_pass`` obligation acted on while the call goes on.

When a live decision carries a ``SecondPassObligation``:

* **Heavier detectors** — the obligation's detectors run on that session's next
  ``SECOND_PASS_WINDOWS`` windows, and only that session's (``StreamingRuntime.
  enable_second_pass``); their signals re-decide the session like any hop's. Names not
  registered on this replica are skipped and reported (log ``live.second_pass``, metric
  ``liveguard_second_pass_skipped_detectors``). Once per session; at most
  ``MAX_SECOND_PASS_SESSIONS`` at once.
* **Raw-media escalation** — only if the obligation says ``raw_media_allowed`` (the engine
  set it: the manifest allows escalation *and* the caller consented) and this check agrees
  again on the session's current context, the manifest declares the window
  (``escalation.max_seconds``) and the retention (``escalation.retention_days``) of its
  raw-audio element, and a key is configured: the caller's next audio, never more than
  that window, is captured in memory and stored sealed (``engine.store.excerpts``). Any
  missing condition refuses, logged ``live.escalation_refused`` with its reason and
  counted in ``liveguard_live_escalations{outcome}``; nothing is captured then.

Without consent nothing leaves the runtime: no capture is even started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter

from engine.core.models import Decision, SecondPassObligation
from engine.store import excerpts
from governance.dataflow import Category

if TYPE_CHECKING:
    from engine.streaming.sessions import LiveSession

log = structlog.get_logger("liveguard.live")

SAMPLE_RATE = 16_000
#: A capture shorter than this at the end of a call is not worth a reviewer's time.
MIN_EXCERPT_S = 0.5


@dataclass
class _Capture:
    decision_id: str
    policy_id: str
    policy_version: str
    retention_days: int
    max_samples: int
    blocks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0

    def feed(self, x: np.ndarray) -> bool:
        """Append (cut at the declared window); True once the window is full."""
        room = self.max_samples - self.samples
        if room > 0:
            part = np.asarray(x[:room], dtype=np.float32)
            self.blocks.append(part)
            self.samples += len(part)
        return self.samples >= self.max_samples

    def pcm16(self) -> bytes:
        x = np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)
        # x 32768 and clipped: PCM16 that came in as int16 / 32768 goes back bit-exact.
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()


@dataclass
class _State:
    second_pass_done: bool = False
    escalation_decided: bool = False
    capture: _Capture | None = None


def escalation_terms(policy: Any) -> tuple[int | None, int | None]:
    """(max_seconds, retention_days) of the policy's escalating raw-audio element(s): the
    tightest declared, or None where any escalating element leaves it undeclared."""
    els = [
        el
        for el in policy.dataflow.elements
        if el.category is Category.raw_audio and el.escalation_allowed
    ]
    if not els:
        return None, None
    secs = [el.escalation.max_seconds for el in els]
    days = [el.escalation.retention_days for el in els]
    return (
        None if None in secs else min(secs),  # type: ignore[type-var]
        None if None in days else min(days),  # type: ignore[type-var]
    )


class Stage2:
    def __init__(
        self,
        rt: Any,
        in_lane: Callable[..., Any],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.rt = rt
        self._in_lane = in_lane
        settings = rt.settings
        self.windows: int = settings.second_pass_windows
        # Captures held in memory at once (each up to max_seconds of float32 audio).
        self.max_captures: int = settings.max_second_pass_sessions
        secret = settings.escalation_key
        # Parsed once; a malformed key fails the first escalation loudly (never its value).
        self._key_text = secret.get_secret_value() if secret is not None else None
        self._key: excerpts.ExcerptKey | None = None
        self._states: dict[str, _State] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.escalations = Counter(
            "liveguard_live_escalations",
            "Raw-media escalations of live sessions, by outcome (stored, or why refused).",
            ["outcome"],
            registry=registry if registry is not None else CollectorRegistry(),
        )

    def _state(self, sid: str) -> _State:
        st = self._states.get(sid)
        if st is None:
            st = self._states[sid] = _State()
        return st

    # --- after each decision -------------------------------------------------------------

    async def after_decision(self, sess: LiveSession, drt: Any, decision: Decision) -> None:
        ob = next((o for o in decision.obligations if isinstance(o, SecondPassObligation)), None)
        if ob is None:
            return
        st = self._state(sess.id)
        if not st.second_pass_done:
            st.second_pass_done = True
            # In the background: this runs under the session's decision lock, and loading
            # a heavier model must hold up neither this session's decisions nor the pump.
            task = asyncio.create_task(self._second_pass(sess.id, drt, ob, decision.decision_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if ob.raw_media_allowed and not st.escalation_decided:
            st.escalation_decided = True
            self._escalate(sess, st, decision)

    async def _second_pass(
        self, session_id: str, drt: Any, ob: SecondPassObligation, decision_id: str
    ) -> None:
        try:
            # Heavier models load in a thread of their own, not the detector lane: every
            # other session's first pass goes on meanwhile.
            failed = await asyncio.get_running_loop().run_in_executor(
                None, drt.second_pass.load, list(ob.detectors)
            )
            for name, why in failed.items():
                log.error("live.second_pass_load_failed", detector=name, detail=why)
            plan = await self._in_lane(
                drt.enable_second_pass, session_id, list(ob.detectors), self.windows
            )
        except Exception as exc:  # the session ended meanwhile, or a model failed to load
            log.warning("live.second_pass_failed", session=session_id, error=type(exc).__name__)
            return
        log.info(
            "live.second_pass",
            session=session_id,
            decision_id=decision_id,
            started=list(plan.started),
            already_running=list(plan.already_running),
            skipped=list(plan.skipped),
            failed=list(plan.failed),
            windows=plan.windows,
            refused=plan.refused,
        )

    def _escalate(self, sess: LiveSession, st: _State, decision: Decision) -> None:
        policy = self.rt.repo.get(sess.policy_id)
        consent = sess.context.consent
        reason: str | None = None
        max_s, days = escalation_terms(policy)
        # The obligation already says so; checked again here because this is where raw
        # media would leave: the manifest, and the consent the session holds *now*.
        if not policy.dataflow.raw_media_escalation_allowed():
            reason = "manifest_forbids"
        elif not (consent.media_analysis and consent.raw_media_escalation):
            reason = "no_consent"
        elif max_s is None:
            reason = "no_declared_window"
        elif days is None:
            reason = "no_declared_retention"
        elif self._key_text is None:
            reason = "no_key"
        elif sum(1 for s in self._states.values() if s.capture is not None) >= self.max_captures:
            reason = "busy"
        else:
            try:
                self._key = self._key or excerpts.ExcerptKey(self._key_text)
            except excerpts.ExcerptKeyInvalid as exc:
                reason = "bad_key"
                log.error("live.escalation_key_invalid", detail=str(exc))
        if reason is not None:
            self.escalations.labels(f"refused_{reason}").inc()
            log.warning(
                "live.escalation_refused",
                session=sess.id,
                decision_id=decision.decision_id,
                reason=reason,
            )
            return
        assert max_s is not None and days is not None
        st.capture = _Capture(
            decision.decision_id,
            decision.policy.id,
            decision.policy.version,
            days,
            max_s * SAMPLE_RATE,
        )
        self.escalations.labels("capturing").inc()
        log.info("live.escalation_capturing", session=sess.id, max_seconds=max_s)

    # --- audio and the end -----------------------------------------------------------------

    async def feed(self, sess: LiveSession, samples: np.ndarray) -> None:
        """The caller's audio, while a capture is open (else nothing is kept)."""
        st = self._states.get(sess.id)
        if st is None or st.capture is None:
            return
        if st.capture.feed(samples):
            cap, st.capture = st.capture, None
            await self._store(sess.id, cap)

    def discard(self, session_id: str) -> None:
        """A session that failed to open: forget it, capture and all."""
        self._states.pop(session_id, None)

    async def ended(self, sess: LiveSession) -> None:
        st = self._states.pop(sess.id, None)
        if st is not None and st.capture is not None:
            cap, st.capture = st.capture, None
            if cap.samples >= MIN_EXCERPT_S * SAMPLE_RATE:
                await self._store(sess.id, cap)
            else:
                self.escalations.labels("too_short").inc()

    async def _store(self, session_id: str, cap: _Capture) -> None:
        key = self._key
        assert key is not None
        pcm = cap.pcm16()
        cap.blocks.clear()
        try:
            excerpt_id = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: excerpts.store(
                    self.rt.db,
                    key,
                    session_id=session_id,
                    decision_id=cap.decision_id,
                    policy_id=cap.policy_id,
                    policy_version=cap.policy_version,
                    pcm16=pcm,
                    sample_rate=SAMPLE_RATE,
                    retention_days=cap.retention_days,
                ),
            )
        except Exception as exc:
            self.escalations.labels("store_failed").inc()
            log.error("live.escalation_store_failed", session=session_id, error=type(exc).__name__)
            return
        self.escalations.labels("stored").inc()
        log.info(
            "live.escalation_stored",
            session=session_id,
            excerpt_id=excerpt_id,
            seconds=round(cap.samples / SAMPLE_RATE, 2),
        )
