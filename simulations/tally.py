"""The count table a backtest's metrics are read from.

Every metric the board reads (action mix, false-positive and catch rates, interruptions,
review load, raw-media escalations, expected cost) is a ratio of counts of sessions by
scenario, attack type, ground truth, action and escalation. One ``np.bincount`` over a
combined integer key gives all of them at once, where a boolean mask per scenario and per
attack type would pass over every session dozens of times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.models import ACTIONS, Action
from simulations.vectorized import SEVERITY

__all__ = ["Tally", "group_metrics", "tally"]

STEP_UP, REVIEW, BLOCK = SEVERITY[Action.step_up], SEVERITY[Action.review], SEVERITY[Action.block]
A = len(ACTIONS)


@dataclass(frozen=True)
class Tally:
    """``counts[s, t, attack, action, escalated]``: sessions of scenario ``scenarios[s]``,
    attack type ``attack_types[t]`` ("" = none), attack or not, the action's severity, and
    whether raw media may leave the edge."""

    scenarios: list[str | None]  # None: sessions without one (counted overall only)
    attack_types: list[str]
    counts: np.ndarray  # int64, shape (S, T, 2, A, 2)


def tally(
    action: np.ndarray,
    escalated: np.ndarray,
    attack: np.ndarray,
    scenario: tuple[Sequence[Any], np.ndarray],
    attack_type: tuple[Sequence[Any], np.ndarray],
) -> Tally:
    """Count sessions; ``scenario`` and ``attack_type`` as (distinct values, codes, -1 = null)."""
    names, s_code = scenario
    types, t_code = attack_type
    s_n = len(names) + 1  # + the null scenario, which a corpus never has but a file might
    t_n = len(types) + 1  # + "no attack type"
    key = np.where(s_code < 0, s_n - 1, s_code).astype(np.int64)
    key *= t_n
    key += np.where(t_code < 0, t_n - 1, t_code)
    key *= 2
    key += attack
    key *= A
    key += action
    key *= 2
    key += escalated
    counts = np.bincount(key, minlength=s_n * t_n * 2 * A * 2).reshape(s_n, t_n, 2, A, 2)
    scenarios: list[str | None] = [*(str(v) for v in names), None]
    attack_types = [str(v) for v in types] + [""]
    return Tally(scenarios, attack_types, counts)


def _rate(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def group_metrics(
    counts: np.ndarray, attack_types: list[str], costs: Any, per_hour: int
) -> dict[str, Any]:
    """The metrics of one group of sessions from its counts ``[t, attack, action, escalated]``."""
    by_truth = counts.sum(axis=(0, 3))  # [attack, action]
    legit, attacks = by_truth[0], by_truth[1]
    actions = by_truth.sum(axis=0)
    n = int(actions.sum())
    n_legit = int(legit.sum())
    n_attack = int(attacks.sum())
    per_type: dict[str, np.ndarray] = {}
    for t, name in enumerate(attack_types):  # the same name may come from two codes
        c = counts[t, 1].sum(axis=1)
        if c.sum():
            per_type[name] = per_type.get(name, 0) + c
    catch: dict[str, Any] = {}
    for name in sorted(per_type):
        c = per_type[name]
        total = int(c.sum())
        catch[name] = {
            "sessions": total,
            "step_up_or_harder": _rate(c[STEP_UP:].sum(), total),
            "review_or_harder": _rate(c[REVIEW:].sum(), total),
            "block": _rate(c[BLOCK], total),
        }
    reviews = int(actions[REVIEW])
    escalations = int(counts[..., 1].sum())
    out: dict[str, Any] = {
        "sessions": n,
        "legitimate": n_legit,
        "attacks": n_attack,
        "actions": {a.value: int(c) for a, c in zip(ACTIONS, actions, strict=True)},
        "action_mix": {a.value: _rate(c, n) for a, c in zip(ACTIONS, actions, strict=True)},
        "false_positive_rate": {
            "step_up_or_harder": _rate(legit[STEP_UP:].sum(), n_legit),
            "review_or_harder": _rate(legit[REVIEW:].sum(), n_legit),
            "block": _rate(legit[BLOCK], n_legit),
        },
        "catch_rate": catch,
        "catch_rate_all_attacks": _rate(attacks[STEP_UP:].sum(), n_attack),
        "interruption_rate": _rate(legit[1:].sum(), n_legit),
        "review_queue": {
            "per_1000_sessions": None if n == 0 else reviews / n * 1000,
            "per_hour": None if n == 0 else reviews / n * per_hour,
        },
        "raw_media_escalations_per_1000": None if n == 0 else escalations / n * 1000,
        "expected_cost": None,
    }
    if costs is not None:
        legit_cost = np.array([costs.legitimate[a] for a in ACTIONS])
        attack_cost = np.array([costs.attack[a] for a in ACTIONS])
        total_cost = float((legit * legit_cost).sum() + (attacks * attack_cost).sum())
        out["expected_cost"] = {
            "currency": costs.currency,
            "total": total_cost,
            "per_session": _rate(total_cost, n),
            "per_1000_sessions": None if n == 0 else total_cost / n * 1000,
        }
    return out
