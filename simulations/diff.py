"""Version diffs and threshold sweeps over a corpus.

Diff: the sessions whose action changes between two policy versions, as an action → action
flow, grouped by scenario and by the reasons that changed (the changed sessions are decided
again with ``decide()`` under both versions to get their reasons; at most
``MAX_EXPLAINED`` of them, the rest are counted, not explained), with examples.

Sweep: one threshold (``thresholds.review``) or one adjustment's shift
(``adjustments.high_value``) moved over a range; each point is a vectorized backtest, so
the board sees false-positive rate against catch rate and cost, with the current value
marked.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from engine import decide
from engine.backends.yaml_policy import YamlPolicySpec
from engine.core.models import ACTIONS
from engine.core.policy import Policy
from simulations.backtest import Evaluated, evaluate, metrics
from simulations.corpus import requests_from_corpus

__all__ = ["MAX_EXPLAINED", "MAX_SWEEP_POINTS", "SweepError", "diff_versions", "sweep"]

MAX_EXPLAINED = 5_000
MAX_SWEEP_POINTS = 101
EXAMPLES = 5


class SweepError(ValueError):
    pass


def diff_versions(new: Evaluated, old: Evaluated, table: pa.Table) -> dict[str, Any]:
    """What changes from ``old`` to ``new`` on the sessions both apply to."""
    common, i_new, i_old = np.intersect1d(new.rows, old.rows, return_indices=True)
    a_new, a_old = new.action[i_new], old.action[i_old]
    changed = np.flatnonzero(a_new != a_old)
    flow = np.zeros((len(ACTIONS), len(ACTIONS)), dtype=int)
    np.add.at(flow, (a_old, a_new), 1)
    scen = np.array(table.column("scenario").take(pa.array(common)).to_pylist(), dtype=object)
    by_scenario: dict[str, dict[str, int]] = {}
    for s in sorted(set(scen)):
        m = scen == s
        by_scenario[s] = {
            "sessions": int(m.sum()),
            "changed": int((a_new[m] != a_old[m]).sum()),
            "harder": int((a_new[m] > a_old[m]).sum()),
            "softer": int((a_new[m] < a_old[m]).sum()),
        }
    explained = changed[:MAX_EXPLAINED]
    rows = common[explained].tolist()
    reqs = requests_from_corpus(table, rows)
    groups: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row, req in zip(rows, reqs, strict=True):
        d_new, d_old = decide(req, new.policy), decide(req, old.policy)
        codes_new = {r.code for r in d_new.reasons}
        codes_old = {r.code for r in d_old.reasons}
        key = (
            " ".join(
                [f"+{c}" for c in sorted(codes_new - codes_old)]
                + [f"-{c}" for c in sorted(codes_old - codes_new)]
            )
            or "(same reasons; risk moved across a threshold)"
        )
        groups[key] += 1
        if len(examples[key]) < EXAMPLES:
            examples[key].append(
                {
                    "session": int(row),
                    "scenario": table.column("scenario")[row].as_py(),
                    "old": {
                        "action": d_old.action.value,
                        "risk": round(d_old.risk, 4),
                        "reasons": [r.code for r in d_old.reasons],
                    },
                    "new": {
                        "action": d_new.action.value,
                        "risk": round(d_new.risk, 4),
                        "reasons": [r.code for r in d_new.reasons],
                    },
                }
            )
    names = [a.value for a in ACTIONS]
    return {
        "old": {
            "id": old.policy.id,
            "version": old.policy.manifest.version,
            "digest": old.policy.digest,
        },
        "new": {
            "id": new.policy.id,
            "version": new.policy.manifest.version,
            "digest": new.policy.digest,
        },
        "sessions": len(common),
        "changed": len(changed),
        "harder": int((a_new > a_old).sum()),
        "softer": int((a_new < a_old).sum()),
        "flow": {
            names[i]: {names[j]: int(flow[i, j]) for j in range(len(names))}
            for i in range(len(names))
        },
        "by_scenario": by_scenario,
        "explained": len(explained),
        "by_reason": [
            {"change": k, "sessions": c, "examples": examples[k]} for k, c in groups.most_common()
        ],
    }


def parse_values(text: str) -> list[float]:
    """``0.3:0.9:0.05`` (start:stop:step, stop included) or ``0.3,0.5,0.7``."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            values = list(np.round(np.arange(start, stop + step / 2, step), 6))
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SweepError(
            f"--values: expected start:stop:step or a comma-separated list, got {text!r}"
        ) from None
    if not 1 <= len(values) <= MAX_SWEEP_POINTS:
        raise SweepError(f"--values: expected 1 to {MAX_SWEEP_POINTS} points, got {len(values)}")
    return values


def _with(policy: Policy, parameter: str, value: float) -> Policy:
    spec = policy.spec
    assert spec is not None
    raw = spec.model_dump(mode="json", exclude_none=True)
    kind, _, name = parameter.partition(".")
    if kind == "thresholds":
        if name not in raw["thresholds"]:
            raise SweepError(
                f"--parameter: {policy.id} has no threshold {name!r}; "
                f"expected one of {', '.join(raw['thresholds'])}"
            )
        raw["thresholds"][name] = value
    elif kind == "adjustments":
        hits = [a for a in raw.get("adjustments", []) if a["id"] == name]
        if not hits:
            known = ", ".join(a["id"] for a in raw.get("adjustments", [])) or "none"
            raise SweepError(f"--parameter: {policy.id} has no adjustment {name!r}; known: {known}")
        hits[0]["shift"] = value
    else:
        raise SweepError(
            f"--parameter: expected thresholds.<action> or adjustments.<id>, got {parameter!r}"
        )
    new_spec = YamlPolicySpec.model_validate(raw)
    return dataclasses.replace(policy, spec=new_spec)


def current_value(policy: Policy, parameter: str) -> float | None:
    spec = policy.spec
    assert spec is not None
    kind, _, name = parameter.partition(".")
    if kind == "thresholds":
        return next((v for a, v in spec.thresholds.items() if a.value == name), None)
    for adj in spec.adjustments:
        if adj.id == name:
            return adj.shift if isinstance(adj.shift, float | int) else None
    return None


def sweep(policy: Policy, table: pa.Table, parameter: str, values: list[float]) -> dict[str, Any]:
    """One backtest per value of ``parameter``; invalid points (thresholds out of order) are
    reported with the reason instead of evaluated."""
    if policy.spec is None:
        raise SweepError(f"--policy: {policy.id} is a Rego policy; sweeps need a YAML policy")
    current = current_value(policy, parameter)
    points: list[dict[str, Any]] = []
    for v in values:
        try:
            candidate = _with(policy, parameter, v)
        except ValidationError as exc:
            points.append({"value": v, "invalid": exc.errors()[0]["msg"]})
            continue
        m = metrics(evaluate(candidate, table, timing=False), table)["overall"]
        cost = m["expected_cost"]
        points.append(
            {
                "value": v,
                "false_positive_rate": m["false_positive_rate"]["step_up_or_harder"],
                "catch_rate": m["catch_rate_all_attacks"],
                "review_per_1000": m["review_queue"]["per_1000_sessions"],
                "cost_per_1000": None if cost is None else cost["per_1000_sessions"],
            }
        )
    return {"policy": policy.id, "parameter": parameter, "current": current, "points": points}
