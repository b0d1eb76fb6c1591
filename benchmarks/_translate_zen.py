"""Translate a YAML policy's decision logic into a GoRules ZEN graph (benchmark baseline).

The graph receives the same flattened, minimized context the YAML evaluator sees plus the
engine's fusion, and computes effective thresholds, the action, the degraded cap and the
rules, so the comparison is the same logic in another engine.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from engine.backends.yaml_policy import YamlPolicySpec
from engine.core.conditions import ORDINALS
from engine.core.models import THRESHOLD_ACTIONS, Action


def key(path: str) -> str:
    return path.replace(".", "__")


def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"'{v}'"
    return repr(float(v))


def _leaf(path: str, spec: Any) -> str:
    k = key(path)
    if isinstance(spec, list):
        spec = {"in": spec}
    elif not isinstance(spec, dict):
        spec = {"eq": spec}
    parts = []
    levels = ORDINALS.get(path)
    for op, operand in spec.items():
        if levels and op in ("gt", "gte", "lt", "lte"):
            i = levels.index(operand)
            keep = {
                "gt": levels[i + 1 :],
                "gte": levels[i:],
                "lt": levels[:i],
                "lte": levels[: i + 1],
            }[op]
            parts.append(f"{k} in [{', '.join(_lit(x) for x in keep)}]")
        elif op == "in":
            parts.append(f"{k} in [{', '.join(_lit(x) for x in operand)}]")
        elif op == "not_in":
            parts.append(f"not ({k} in [{', '.join(_lit(x) for x in operand)}])")
        else:
            sym = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            parts.append(f"{k} {sym} {_lit(operand)}")
    return f"({k} != null and {' and '.join(parts)})"


def condition(spec: dict[str, Any]) -> str:
    parts = []
    for k, v in spec.items():
        if k == "all":
            parts.append("(" + " and ".join(condition(s) for s in v) + ")")
        elif k == "any":
            parts.append("(" + " or ".join(condition(s) for s in v) + ")")
        elif k == "not":
            parts.append(f"not {condition(v)}")
        else:
            parts.append(_leaf(k, v))
    return "(" + " and ".join(parts) + ")"


def _node(node_id: str, exprs: dict[str, str]) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "expressionNode",
        "name": node_id,
        "position": {"x": 0, "y": 0},
        "content": {
            "expressions": [
                {"id": str(i), "key": k, "value": v} for i, (k, v) in enumerate(exprs.items())
            ]
        },
    }


def graph(spec: YamlPolicySpec) -> str:
    # Node 1: shifted thresholds, carried values, and each rule's condition.
    first: dict[str, str] = {"risk": "fused__risk", "degraded": "degraded"}
    prev = "0.01"
    for a in THRESHOLD_ACTIONS:
        shift_terms = []
        for adj in spec.adjustments:
            s = adj.shift.get(a, 0.0) if isinstance(adj.shift, dict) else adj.shift
            if s:
                shift_terms.append(f"({condition(adj.when)} ? {s} : 0)")
        raw = f"{spec.thresholds[a]} + " + (" + ".join(shift_terms) if shift_terms else "0")
        expr = f"max([{prev}, min([0.99, {raw}])])"
        first[f"th_{a.value}"] = expr
        prev = expr
    for i, rule in enumerate(spec.rules):
        first[f"rule_{i}"] = condition(rule.when)
    # Node 2: action by thresholds, then the degraded floor/cap.
    sev = {a.value: i for i, a in enumerate([Action.log, *THRESHOLD_ACTIONS])}
    ladder = "0"
    for a in THRESHOLD_ACTIONS:
        ladder = f"(risk >= th_{a.value} ? {sev[a.value]} : {ladder})"
    second = {
        "sev": ladder,
        **{k: k for k in first if k.startswith("rule_")},
        "degraded": "degraded",
    }
    lo, hi = sev[spec.degraded.min_action.value], sev[spec.degraded.max_action.value]
    third = {
        "sev": f"degraded ? min([max([sev, {lo}]), {hi}]) : sev",
        **{k: k for k in first if k.startswith("rule_")},
        "degraded": "degraded",
    }
    nodes = [
        {"id": "in", "type": "inputNode", "name": "in", "position": {"x": 0, "y": 0}},
        _node("thresholds", first),
        _node("ladder", second),
        _node("degraded", third),
    ]
    # One node per rule, applied in order, as the YAML evaluator does.
    for i, rule in enumerate(spec.rules):
        r = sev[rule.action.value]
        if rule.mode == "at_least":
            forced = f"max([sev, {r}])"
        elif rule.mode == "at_most":
            forced = f"min([sev, {r}])"
        else:
            forced = str(r)
        if not rule.applies_when_degraded:
            forced = f"(degraded ? min([{forced}, max([sev, {hi}])]) : {forced})"
        rest = {k: k for k in first if k.startswith("rule_")}
        nodes.append(
            _node(f"rule{i}", {"sev": f"rule_{i} ? {forced} : sev", **rest, "degraded": "degraded"})
        )
    names = [a.value for a in [Action.log, *THRESHOLD_ACTIONS]]
    name_expr = "'log'"
    for i, n in enumerate(names[1:], start=1):
        name_expr = f"(sev == {i} ? '{n}' : {name_expr})"
    nodes.append(_node("action", {"action": name_expr}))
    nodes.append({"id": "out", "type": "outputNode", "name": "out", "position": {"x": 0, "y": 0}})
    edges = [
        {"id": f"e{i}", "sourceId": a["id"], "targetId": b["id"], "type": "edge"}
        for i, (a, b) in enumerate(itertools.pairwise(nodes))
    ]
    return json.dumps({"nodes": nodes, "edges": edges})


def zen_input(
    ctx: dict[str, Any], fused_risk: float, degraded: bool, fields: list[str]
) -> dict[str, Any]:
    data = {key(f): ctx.get(f) for f in fields}
    data["fused__risk"] = fused_risk
    data["degraded"] = degraded
    return data
