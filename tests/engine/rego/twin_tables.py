"""The derived tables in each Rego twin's data.json, generated from its authored sections.

A Rego twin's data.json holds what a policy author writes (``thresholds``, ``adjustments``
with their shifts, ``rules``, ``degraded``, ``second_pass``, ``obligations``) and, under
``derived``, tables computed from those sections once (partial evaluation of the constant
part of the policy):

* ``adjusted[b0][b1]…`` - one leaf per combination of adjustments (``bi`` = 1 when the i-th
  adjustment in ``adjustments`` order applies): the effective thresholds (shifts summed,
  clamped to [0.01, 0.99], kept non-decreasing, rounded to 4 places: the YAML engine's
  arithmetic), the adjustment reasons, the context phrases and the fired ids;
* ``overrides[b0][b1]…`` - one leaf per combination of hard rules (``rules`` order): the
  strongest rule action (``log`` when none fires), the rule reasons (each with the action
  its rule asks for) and fired ids;
* ``degraded_action[a]`` - risk action ``a`` clamped by ``degraded`` (min_action, max_action);
* ``at_least[a][b]`` - the more severe of two actions;
* ``obligations[action][why]`` - the action's obligation plus the second-pass request
  (``why`` is "medium risk", "evidence too weak" or "none"; never with ``block``).

The policy evaluates only the conditions (code) per request and looks the rest up. The
twins' tests check data.json's ``derived`` equals what this module computes; after editing
an authored section, regenerate with ``python -m tests.engine.rego.twin_tables --write``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
TWIN_FOLDERS = ("support-password-reset-rego", "payout-authorization-rego")
ACTIONS = ("log", "warn", "step_up", "review", "block")
SEVERITY = {a: i for i, a in enumerate(ACTIONS)}
THRESHOLD_ACTIONS = ACTIONS[1:]
WHY = ("medium risk", "evidence too weak", "none")


def _thresholds(cfg: dict[str, Any], applied: list[dict[str, Any]]) -> dict[str, float]:
    shifts = [0.0] * len(THRESHOLD_ACTIONS)
    for adj in applied:
        for j, a in enumerate(THRESHOLD_ACTIONS):
            shifts[j] += adj["shift"][a]
    out: dict[str, float] = {}
    floor = 0.01
    for j, a in enumerate(THRESHOLD_ACTIONS):
        floor = max(floor, min(0.99, cfg["thresholds"][a] + shifts[j]))
        out[a] = round(floor, 4)
    return out


def _nest(n: int, leaf: Any, prefix: tuple[int, ...] = ()) -> Any:
    if len(prefix) == n:
        return leaf(prefix)
    return [_nest(n, leaf, (*prefix, bit)) for bit in (0, 1)]


def derive(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``derived`` section for one twin's authored data."""
    adjustments, rules = cfg["adjustments"], cfg["rules"]
    degraded, second_pass = cfg["degraded"], cfg["second_pass"]

    def adjusted(bits: tuple[int, ...]) -> dict[str, Any]:
        applied = [adj for adj, bit in zip(adjustments, bits, strict=True) if bit]
        return {
            "thresholds": _thresholds(cfg, applied),
            "reasons": [
                {
                    "code": f"adjustment.{adj['id']}",
                    "message": f"Thresholds adjusted for {adj['phrase']}.",
                    "kind": "adjustment",
                }
                for adj in applied
            ],
            "context": [adj["phrase"] for adj in applied],
            "fired": [f"adjustment.{adj['id']}" for adj in applied],
        }

    def overrides(bits: tuple[int, ...]) -> dict[str, Any]:
        fired = [r for r, bit in zip(rules, bits, strict=True) if bit]
        return {
            "action": max((r["action"] for r in fired), key=SEVERITY.__getitem__, default="log"),
            "reasons": [
                # The action the rule asks for: the summary leads with a rule only if it decided.
                {
                    "code": f"rule.{r['id']}",
                    "message": r["reason"],
                    "kind": "rule",
                    "action": r["action"],
                }
                for r in fired
            ],
            "fired": [f"rule.{r['id']}" for r in fired],
        }

    def obligations(action: str, why: str) -> list[dict[str, Any]]:
        out = [cfg["obligations"][action]] if action in cfg["obligations"] else []
        if why != "none" and SEVERITY[action] < SEVERITY["block"]:
            out.append(
                {
                    "kind": "second_pass",
                    "detectors": second_pass["detectors"],
                    # A request: the engine grants raw media only if manifest and consent allow.
                    "raw_media_allowed": second_pass["raw_media"],
                    "why": why,
                }
            )
        return out

    lo, hi = SEVERITY[degraded["min_action"]], SEVERITY[degraded["max_action"]]
    return {
        "adjusted": _nest(len(adjustments), adjusted),
        "overrides": _nest(len(rules), overrides),
        "degraded_action": {a: ACTIONS[min(hi, max(SEVERITY[a], lo))] for a in ACTIONS},
        "at_least": {a: {b: max(a, b, key=SEVERITY.__getitem__) for b in ACTIONS} for a in ACTIONS},
        "obligations": {a: {w: obligations(a, w) for w in WHY} for a in ACTIONS},
    }


def authored(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "derived"}


def with_derived(data: dict[str, Any]) -> dict[str, Any]:
    """data.json's content with ``derived`` regenerated and placed first.

    First, because rego-cpp finds an object key by a linear scan that serializes every key
    it passes: the tables are read on every request, the authored sections mostly not.
    """
    return {"derived": derive(authored(data)), **authored(data)}


def data_path(folder: str) -> Path:
    return ROOT / "policies" / folder / "data.json"


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite stale data.json files")
    args = parser.parse_args(argv)
    stale = 0
    for folder in TWIN_FOLDERS:
        path = data_path(folder)
        current = path.read_text(encoding="utf-8")
        wanted = render(with_derived(json.loads(current)))
        if current != wanted:
            stale += 1
            if args.write:
                path.write_text(wanted, encoding="utf-8")
            print(f"{path}: {'rewritten' if args.write else 'derived tables are stale'}")
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
