"""``decide(request, policy) -> Decision``: the pure heart of liveguard.

No I/O: the clock and the decision id may be passed in; logging, storage and metrics
happen at the edges that call this.
"""

from __future__ import annotations

import gc
import os
import weakref
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter_ns, thread_time_ns

from engine.core.construct import build
from engine.core.errors import PolicyEvalTimeout
from engine.core.fusion import fuse
from engine.core.models import (
    Action,
    Decision,
    Fused,
    NotifyObligation,
    Obligation,
    Reason,
    ReasonKind,
    RetentionObligation,
    ReviewObligation,
    SecondPassObligation,
    StepUpObligation,
)
from engine.core.policy import Outcome, Policy, PolicyView
from engine.core.summary import signal_phrase, summarize
from signals import MEDIA_MODALITIES

#: A signal moves the decision when it adds at least this much log-odds.
REASON_MIN_LOG_ODDS = 0.4


class _GcClock:
    """CPU time spent in the garbage collector, so a collection that happens to run
    during an evaluation (tens of ms in a large process) is not charged to the policy."""

    def __init__(self) -> None:
        self.total_ns = 0
        self._started = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = thread_time_ns()
        else:
            self.total_ns += thread_time_ns() - self._started


_GC = _GcClock()
gc.callbacks.append(_GC)


def decide(
    request: object,
    policy: Policy,
    *,
    now: datetime | None = None,
    decision_id: str | None = None,
    budget_ms: float | None = None,
) -> Decision:
    """Decide one request under one policy. Never raises for a policy fault: it fails safe.

    With ``budget_ms``, an evaluation that takes longer is a ``policy_eval_timeout`` and the
    policy's fail_mode applies. What is measured is the CPU time this thread spent in the
    evaluator, garbage collection excluded, checked afterwards: enough for backends whose
    cost the parse bounds already limit (YAML: microseconds), and a busy machine that
    preempts the thread does not make a fast policy time out. The service bounds the wall
    time of backends that may run long by evaluating them off its event loop (``Runtime``).
    Without a budget (policy tests, simulations) nothing is timed.
    """
    started = perf_counter_ns()
    decision_id = decision_id or os.urandom(16).hex()
    try:
        view = policy.view(request)  # type: ignore[arg-type]
        fused = fuse(view.signals, policy.fusion)
        degraded = fused.evidence_mass < policy.fusion.min_evidence
        view.ctx["fused.risk"] = fused.risk
        view.ctx["fused.evidence_mass"] = fused.evidence_mass
        view.ctx["fused.signal_count"] = float(len(fused.contributions))
        cpu, wall, collected = thread_time_ns(), perf_counter_ns(), _GC.total_ns
        outcome = policy.evaluator.evaluate(view, fused, degraded)
        # CPU time never exceeds wall time, so the CPU clock (a system call, ~0.8 µs) is
        # read again only when the wall clock (~0.1 µs) says the budget may be passed.
        # An evaluator that bounds its own wall time (a remote OPA's HTTP timeout) is not
        # judged by CPU time here.
        if (
            budget_ms is not None
            and perf_counter_ns() - wall > budget_ms * 1_000_000
            and not hasattr(policy.evaluator, "timeout_ms")
        ):
            spent_ns = thread_time_ns() - cpu - (_GC.total_ns - collected)
            if spent_ns > budget_ms * 1_000_000:
                raise PolicyEvalTimeout(timeout_message(spent_ns / 1e6, budget_ms))
        if not isinstance(outcome.action, Action):
            raise TypeError(f"policy returned an unknown action {outcome.action!r}")
    except Exception as exc:
        return _failed(request, policy, exc, decision_id, now, started)
    reasons = (*_signal_reasons(view, fused, policy), *outcome.reasons, *_privacy_reasons(view))
    summary = summarize(
        outcome.action,
        reasons,
        session_kind=request.session.kind,  # type: ignore[attr-defined]
        channel=request.session.channel,  # type: ignore[attr-defined]
        context_phrases=outcome.context_phrases,
        signal_phrases=policy.signal_phrases,
        media_dropped=not view.request.session.consent.media_analysis,
    )
    return build(
        Decision,
        decision_id=decision_id,
        session_id=view.request.session.id,
        action=outcome.action,
        risk=round(fused.risk, 4),
        thresholds=outcome.thresholds,
        reasons=reasons,
        summary=summary,
        policy=policy.ref,
        obligations=_obligations(policy, view, fused, outcome, degraded),
        degraded=degraded,
        fused=fused,
        error=None,
        decided_at=now.isoformat() if now else None,
        latency_us=(perf_counter_ns() - started) // 1000,
    )


_CAPITALIZED: dict[tuple[str, str], str] = {}


def _capitalized_phrase(policy: Policy, name: str) -> str:
    key = (policy.digest, name)
    phrase = _CAPITALIZED.get(key)
    if phrase is None:
        raw = signal_phrase(name, policy.signal_phrases)
        phrase = _CAPITALIZED[key] = raw[:1].upper() + raw[1:]
    return phrase


def _signal_reasons(view: PolicyView, fused: Fused, policy: Policy) -> tuple[Reason, ...]:
    out: list[Reason] = []
    for c in fused.contributions:
        if c.log_odds < REASON_MIN_LOG_ODDS:
            continue
        name = c.signal
        signal = next(s for s in view.signals if s.name == name and s.score == c.score)
        evidence = signal.evidence
        message = f"{_capitalized_phrase(policy, name)} ({c.score:.2f})"
        if evidence:
            code = evidence[0].code
            message += ": " + "; ".join(e.message for e in evidence[:2])
        else:
            code = "signal." + name
        out.append(
            build(
                Reason,
                code=code,
                message=message,
                kind=ReasonKind.signal,
                signals=(name,),
                value=c.score,
            )
        )
    return tuple(out)


_NO_CONSENT = Reason(
    code="privacy.media_analysis_not_consented",
    message=(
        "The participant did not consent to voice/video analysis; the decision rests on "
        "context and non-media signals."
    ),
    kind=ReasonKind.privacy,
)


def _privacy_reasons(view: PolicyView) -> tuple[Reason, ...]:
    if view.request.session.consent.media_analysis:
        return ()
    if not view.media_dropped:
        return (_NO_CONSENT,)
    # How many, never which: the decision is stored as answered, and what the policy
    # could not see (even a media signal's name) must not reach the log or a reviewer.
    n = len(view.media_dropped)
    return (
        build(
            Reason,
            code=_NO_CONSENT.code,
            message=(
                "The participant did not consent to voice/video analysis; "
                f"{n} media-derived signal{'s were' if n != 1 else ' was'} set aside and "
                "the decision rests on the rest."
            ),
            kind=ReasonKind.privacy,
            signals=(),
            value=None,
        ),
    )


@dataclass(frozen=True, slots=True)
class _ObligationPlan:
    """A YAML policy's obligations, built once: per request only the choice varies."""

    by_action: dict[Action, tuple[Obligation, ...]]
    second_pass: dict[tuple[bool, bool], SecondPassObligation]
    band: tuple[float, float] | None
    on_degraded: bool
    wants_raw_media: bool
    retention: tuple[Obligation, ...]


_PLANS: weakref.WeakKeyDictionary[Policy, _ObligationPlan] = weakref.WeakKeyDictionary()


def _plan(policy: Policy) -> _ObligationPlan:
    plan = _PLANS.get(policy)
    if plan is not None:
        return plan
    by_action: dict[Action, tuple[Obligation, ...]] = {}
    second: dict[tuple[bool, bool], SecondPassObligation] = {}
    band = None
    on_degraded = wants_raw = False
    spec = policy.spec
    if spec is not None:
        ob = spec.obligations
        if ob.step_up:
            by_action[Action.step_up] = (
                StepUpObligation(methods=tuple(ob.step_up.methods), message=ob.step_up.message),
            )
        if ob.review:
            by_action[Action.review] = (
                ReviewObligation(
                    queue=ob.review.queue,
                    sla_minutes=ob.review.sla_minutes,
                    checklist=tuple(ob.review.checklist),
                ),
            )
        for action, notify in ((Action.block, ob.block), (Action.warn, ob.warn)):
            if notify:
                by_action[action] = (
                    NotifyObligation(channel=notify.channel, message=notify.message),
                )
        sp = spec.second_pass
        if sp is not None:
            band, on_degraded, wants_raw = sp.band, sp.on_degraded, sp.raw_media
            for raw in (False, True):
                for in_band in (False, True):
                    second[(raw, in_band)] = SecondPassObligation(
                        detectors=tuple(sp.detectors),
                        raw_media_allowed=raw,
                        why="medium risk" if in_band else "evidence too weak",
                    )
    days = decision_log_days(policy)
    retention = (RetentionObligation(decision_log_days=days),) if days is not None else ()
    plan = _ObligationPlan(by_action, second, band, on_degraded, wants_raw, retention)
    _PLANS[policy] = plan
    return plan


def _obligations(
    policy: Policy, view: PolicyView, fused: Fused, outcome: Outcome, degraded: bool
) -> tuple[Obligation, ...]:
    plan = _plan(policy)
    action = outcome.action
    if outcome.obligations is not None:
        out: list[Obligation] = []
        for ob in outcome.obligations:
            if isinstance(ob, SecondPassObligation) and ob.raw_media_allowed:
                # The engine, not the policy, has the last word on raw media leaving the edge.
                ob = ob.model_copy(update={"raw_media_allowed": raw_media_permitted(policy, view)})
            kept = _consented_second_pass(ob, view)
            if kept is not None:
                out.append(kept)
        return (*out, *plan.retention)
    chosen = plan.by_action.get(action, ())
    if plan.band is not None and action < Action.block:
        in_band = plan.band[0] <= fused.risk < plan.band[1]
        if in_band or (degraded and plan.on_degraded):
            raw = plan.wants_raw_media and raw_media_permitted(policy, view)
            chosen = (*chosen, plan.second_pass[(raw, in_band)])
    kept_all = (_consented_second_pass(ob, view) for ob in chosen)
    return (*(ob for ob in kept_all if ob is not None), *plan.retention)


def _consented_second_pass(ob: Obligation, view: PolicyView) -> Obligation | None:
    """A second pass is media analysis: without the participant's consent to it, its media
    detectors are struck from the obligation (the engine, not the policy, has the last word),
    and an obligation left with none is not issued. Otherwise a caller would be told to run
    heavier voice analysis on a session that did not allow any."""
    if not isinstance(ob, SecondPassObligation) or view.request.session.consent.media_analysis:
        return ob
    left = tuple(d for d in ob.detectors if d.split(".", 1)[0] not in _MEDIA_PREFIXES)
    if not left:
        return None
    return ob.model_copy(update={"detectors": left, "raw_media_allowed": False})


_MEDIA_PREFIXES = frozenset(m.value for m in MEDIA_MODALITIES)


def raw_media_permitted(policy: Policy, view: PolicyView) -> bool:
    """Raw media may leave the edge only if the manifest allows it and the participant agreed."""
    consent = view.request.session.consent
    return (
        policy.dataflow.raw_media_escalation_allowed()
        and consent.media_analysis
        and consent.raw_media_escalation
    )


def decision_log_days(policy: Policy) -> int | None:
    days = [
        el.retention_days
        for el in policy.dataflow.elements
        if not el.is_raw_media and el.retention_days
    ]
    return max(days) if days else None


def timeout_message(spent_ms: float | None, budget_ms: float) -> str:
    took = f"took {spent_ms:.1f} ms" if spent_ms is not None else "did not finish"
    return f"evaluation {took}; the policy's budget is {budget_ms:g} ms (eval_budget_ms)"


def failed_decision(
    request: object,
    policy: Policy,
    exc: Exception,
    *,
    decision_id: str,
    now: datetime | None = None,
) -> Decision:
    """The fail-safe decision for an evaluation that failed or ran out of time."""
    return _failed(request, policy, exc, decision_id, now, perf_counter_ns())


def _failed(
    request: object,
    policy: Policy,
    exc: Exception,
    decision_id: str,
    now: datetime | None,
    started: int,
) -> Decision:
    action = policy.manifest.fail_mode
    code = getattr(exc, "code", "policy_eval_error")
    timed_out = isinstance(exc, PolicyEvalTimeout)
    reason = Reason(
        code=code if timed_out else "policy_eval_error",
        message="Policy evaluation ran out of time; fail-safe action applied."
        if timed_out
        else f"Policy evaluation failed ({type(exc).__name__}); fail-safe action applied.",
        kind=ReasonKind.error,
    )
    session = getattr(request, "session", None)
    return build(
        Decision,
        decision_id=decision_id,
        session_id=getattr(session, "id", "unknown"),
        action=action,
        risk=1.0,
        thresholds={},
        reasons=(reason,),
        summary=summarize(
            action,
            (reason,),
            session_kind=getattr(session, "kind", "session"),
            context_phrases=(),
            signal_phrases={},
            media_dropped=False,
            failed=True,
        ),
        policy=policy.ref,
        obligations=(),
        degraded=True,
        fused=None,
        error=f"{code}: {exc}",
        decided_at=now.isoformat() if now else None,
        latency_us=(perf_counter_ns() - started) // 1000,
    )
