"""What each Rego construct costs in rego-cpp (regopy) vs OPA's evaluator, per query.

Every case is a tiny policy ``liveguard.t.decision`` evaluated on the same 300 inputs by
both engines in this process, the way the engine calls them (regopy: C-API input, compiled
entrypoint, JSON output parsed in Python; OPA: ``eval_document``). Rounds are interleaved
and each number is the median of the per-round medians (µs); ``extra`` is the cost above
the ``trivial`` case, i.e. what the construct itself adds. The last rows are the real
decision documents of the two Rego twins returned from data (no logic at all): the cost of
getting a decision of that size in and out, which no rewrite of a policy can remove.

Run: ``.venv/bin/python benchmarks/rego_constructs.py`` (needs scripts/fetch_opa_evaluator.sh).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.backends.opa.local import missing_message, opa_engine_class  # noqa: E402
from engine.backends.rego.embedded import RegoEvaluator, compile_rego, mount_data  # noqa: E402
from engine.core.fusion import fuse  # noqa: E402
from engine.core.models import DecisionRequest  # noqa: E402
from engine.policy.repository import PolicyRepository  # noqa: E402
from tests.engine.rego import requests as gen  # noqa: E402

HEAD = "package liveguard.t\n\nimport rego.v1\n\n"
N, ROUNDS = 300, 5
BIG = {f"k{i}": {"text": f"entry {i} with a sentence of text", "n": [1, 2, 3]} for i in range(20)}

# name -> (policy body, data)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "trivial": ('decision := {"action": "log"}\n', {}),
    "read 1 input field": ('decision := {"action": "log", "x": input.fused.risk}\n', {}),
    "8 else-flag rules": (
        "".join(f"f{i} := 1 if input.fused.risk >= 0.{i}\nelse := 0\n\n" for i in range(8))
        + "decision := {"
        + ", ".join(f'"f{i}": f{i}' for i in range(8))
        + "}\n",
        {},
    ),
    "8 comprehensions over 4": (
        "".join(
            f"c{i} := [x | some x in [0.1, 0.3, 0.5, 0.7]; x <= input.fused.risk + 0.0{i}]\n\n"
            for i in range(8)
        )
        + "decision := {"
        + ", ".join(f'"c{i}": count(c{i})' for i in range(8))
        + "}\n",
        {},
    ),
    "8 set-literal memberships": (
        "".join(
            f'm{i} := 1 if input.device.posture in {{"unknown", "compromised", "x{i}"}}\nelse := 0\n\n'
            for i in range(8)
        )
        + "decision := {"
        + ", ".join(f'"m{i}": m{i}' for i in range(8))
        + "}\n",
        {},
    ),
    "8 sprintf": (
        "".join(
            f's{i} := sprintf("Adjusted for %v ({i}).", [input.fused.risk])\n' for i in range(8)
        )
        + "decision := {"
        + ", ".join(f'"s{i}": s{i}' for i in range(8))
        + "}\n",
        {},
    ),
    "8 data lookups (import)": (
        "import data.liveguard_data.t as cfg\n\n"
        + "decision := {"
        + ", ".join(f'"d{i}": cfg.big.k{i}.n[0]' for i in range(8))
        + "}\n",
        {"big": BIG},
    ),
    "8 data lookups (rule alias)": (
        "cfg := data.liveguard_data.t\n\n"
        + "decision := {"
        + ", ".join(f'"d{i}": cfg.big.k{i}.n[0]' for i in range(8))
        + "}\n",
        {"big": BIG},
    ),
    "return 20 objects from data": (
        'decision := {"x": data.liveguard_data.t.big}\n',
        {"big": BIG},
    ),
    "build 8 objects of 3 keys": (
        'decision := {"x": ['
        + ", ".join(
            f'{{"code": "c{i}", "kind": "rule", "value": input.fused.risk}}' for i in range(8)
        )
        + "]}\n",
        {},
    ),
}


def _inputs(policy: Any, kind: str) -> list[dict[str, Any]]:
    ev: RegoEvaluator = policy.evaluator
    out = []
    for raw in gen.bulk(N, seed=5, kind=kind):
        req = DecisionRequest.model_validate(raw)
        view = policy.view(req)
        fused = fuse(view.signals, policy.fusion)
        out.append(ev.input_for(view, fused, fused.evidence_mass < policy.fusion.min_evidence))
    return out


def _engines(src: str, data: dict[str, Any], opa_cls: Any) -> tuple[Any, Any]:
    """The engine's own regopy path (compile_rego + RegoEvaluator) and OPA's, for one case.

    ``data`` is what a data.json would hold: both engines see it at ``data.liveguard_data.t``.
    """
    problems: list[str] = []
    modules = {"policy.rego": src if "package liveguard.t" in src else HEAD + src}
    compiled = compile_rego(
        modules, data, "t", "liveguard/t/decision", where=ROOT, problems=problems
    )
    if compiled is None:
        raise SystemExit(f"does not compile: {problems}")
    ev = RegoEvaluator(compiled, None)  # type: ignore[arg-type]  # fusion unused here
    opa = opa_cls()
    for name, text in modules.items():
        opa.add_policy(name, text)
    if data:
        opa.add_data(mount_data("t", data))
    return ev.evaluate_document, lambda d: opa.eval_document("liveguard.t.decision", d)


def _median_us(fn: Any, docs: list[Any]) -> float:
    out = np.empty(len(docs))
    for i, d in enumerate(docs):
        t = time.perf_counter_ns()
        fn(d)
        out[i] = (time.perf_counter_ns() - t) / 1000
    return float(np.median(out))


def main() -> None:
    opa_cls = opa_engine_class()
    if opa_cls is None:
        raise SystemExit(missing_message())
    repo = PolicyRepository(ROOT / "policies")
    spr, pay = repo.get("support-password-reset-rego"), repo.get("payout-authorization-rego")
    docs = _inputs(spr, "password_reset")
    cases = dict(CASES)
    # The twins' own decision documents, returned from data by index: only I/O and output.
    for label, policy, kind in (
        ("spr", spr, "password_reset"),
        ("payout", pay, "payout_authorization"),
    ):
        inputs = _inputs(policy, kind)
        c = policy.evaluator.compiled
        opa = opa_cls()
        for name, text in c.modules.items():
            opa.add_policy(name, text)
        opa.add_data(mount_data(c.package, c.data))
        outs = [opa.eval_document(c.query_path, d) for d in inputs]
        cases[f"{label} decision doc from data"] = (
            "decision := data.liveguard_data.t.out[input.i]\n",
            {"out": outs},
        )
        cases[f"{label} decision doc + its input"] = cases[f"{label} decision doc from data"]
        cases[f"{label} twin policy (full)"] = (
            c.modules["policy.rego"]
            .replace(f"package liveguard.{c.package}", "package liveguard.t")
            .replace(f"data.liveguard_data.{c.package}", "data.liveguard_data.t"),
            c.data,
        )
        _TWIN_INPUTS[label] = inputs
    engines = {name: _engines(src, data, opa_cls) for name, (src, data) in cases.items()}
    timings: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in engines}
    for _ in range(ROUNDS):
        for name, (rego_fn, opa_fn) in engines.items():
            these = _docs_for(name, docs)
            timings[name][0].append(_median_us(rego_fn, these))
            timings[name][1].append(_median_us(opa_fn, these))
    base_r = float(np.median(timings["trivial"][0]))
    base_o = float(np.median(timings["trivial"][1]))
    print(f"{'case':<34} {'regopy':>8} {'opa':>8} {'ratio':>6} {'extra r':>8} {'extra o':>8}  (µs)")
    rows = {}
    for name, (r, o) in timings.items():
        mr, mo = float(np.median(r)), float(np.median(o))
        rows[name] = (mr, mo)
        spread = max(np.ptp(r) / mr, np.ptp(o) / mo)
        print(
            f"{name:<34} {mr:8.1f} {mo:8.1f} {mr / mo:6.2f} {mr - base_r:8.1f} {mo - base_o:8.1f}"
            f"  spread {spread:.0%}"
        )
    print(
        "RESULT "
        + " ".join(
            f"{name.replace(' ', '_').replace('(', '').replace(')', '')}_regopy_us={r:.1f}"
            f" {name.replace(' ', '_').replace('(', '').replace(')', '')}_opa_us={o:.1f}"
            for name, (r, o) in rows.items()
        )
    )


_TWIN_INPUTS: dict[str, list[dict[str, Any]]] = {}


def _docs_for(name: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for label, inputs in _TWIN_INPUTS.items():
        if name == f"{label} decision doc from data":
            return [{"i": i} for i in range(len(inputs))]
        if name == f"{label} decision doc + its input":
            return [dict(d, i=i) for i, d in enumerate(inputs)]
        if name == f"{label} twin policy (full)":
            return inputs
    return docs


if __name__ == "__main__":
    main()
