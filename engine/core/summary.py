"""The one sentence a frontline agent reads: what to do, and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from engine.core.models import Action, Reason, ReasonKind

ACTION_PHRASES: dict[Action, str] = {
    Action.log: "Continue",
    Action.warn: "Proceed with caution",
    Action.step_up: "Step up verification",
    Action.review: "Hold for human review",
    Action.block: "Block the session",
}

#: Plain words for the built-in signals; policies may override them per signal.
DEFAULT_SIGNAL_PHRASES: dict[str, str] = {
    "audio.synthetic_voice": "the voice shows synthetic-speech artifacts",
    "audio.replay": "the audio sounds replayed through a loudspeaker",
    "audio.voice_consistency": "the voice changed during the call",
    "audio.quality": "the audio quality is too poor to judge",
    "av.lipsync": "lip movements do not match the voice",
    "video.face_dynamics": "the face moves unnaturally",
    "behavior.turn_taking": "the turn-taking is machine-like",
    "session.anomaly": "the session's device and location look unusual",
}


def signal_phrase(name: str, overrides: Mapping[str, str]) -> str:
    return overrides.get(name) or DEFAULT_SIGNAL_PHRASES.get(name) or f"the {name} signal is high"


@lru_cache(maxsize=1024)
def _clause(text: str) -> str:
    """A reason message as a clause inside one sentence: no capital, no final period."""
    text = text.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@lru_cache(maxsize=1024)
def _setting(channel: str, session_kind: str, context_phrases: tuple[str, ...]) -> str:
    """' on a password reset with low identity assurance' — cached: few combinations occur."""
    preposition = "in" if channel == "conference" else "on"
    text = f" {preposition} {_a(session_kind.replace('_', ' '))}"
    if context_phrases:
        text += f" with {_join(list(dict.fromkeys(context_phrases)))}"
    return text


def summarize(
    action: Action,
    reasons: Sequence[Reason],
    *,
    session_kind: str,
    context_phrases: tuple[str, ...],
    channel: str = "support_call",
    signal_phrases: Mapping[str, str],
    media_dropped: bool,
    failed: bool = False,
) -> str:
    """E.g. "Step up verification: the caller's voice shows synthetic-speech artifacts (0.87)
    on a password reset with low identity assurance."
    """
    rule_msgs: list[str] = []
    signal_msgs: list[str] = []
    degraded = False
    for r in reasons:
        kind = r.kind
        if kind is ReasonKind.signal:
            if r.signals and r.value is not None and len(signal_msgs) < 2:
                signal_msgs.append(f"{signal_phrase(r.signals[0], signal_phrases)} ({r.value:.2f})")
        elif kind is ReasonKind.rule and (r.action is None or r.action == action):
            # Lead with a rule only when it is what decided the action.
            rule_msgs.append(_clause(r.message))
        elif kind is ReasonKind.degraded:
            degraded = True
    if failed:
        why = "the policy could not be evaluated, so its fail-safe action applies"
    elif rule_msgs:
        why = _join(rule_msgs[:2])
        if signal_msgs:
            why += f", and {signal_msgs[0]}"
    elif signal_msgs:
        why = _join(signal_msgs)
    elif degraded:
        why = "the evidence is too weak for a firm decision"
    elif action == Action.log:
        why = "no signal indicates manipulation"
    else:
        why = "the combined signals are elevated"
    sentence = (
        f"{ACTION_PHRASES[action]}: {why}{_setting(channel, session_kind, tuple(context_phrases))}"
    )
    if degraded and not failed and (rule_msgs or signal_msgs):
        sentence += ", though the evidence is limited"
    if media_dropped:
        sentence += "; voice and video analysis was not consented, so this rests on the context"
    return sentence + "."
