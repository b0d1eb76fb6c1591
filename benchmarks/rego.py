"""Per-decision latency of each Rego policy: regopy vs OPA's evaluator vs the YAML twin.

Same process, same generated requests. For each Rego twin it measures, per decision:
  input     - building the input document (request_input + plan pruning)
  regopy    - regopy evaluation only (C-API input conversion + compiled entrypoint + parse)
  opa_full  - OPA's Go evaluator on the same full (unpruned) input document
  opa_pruned- OPA's evaluator on the pruned input regopy gets
  decide    - the whole engine decide() with the Rego policy (fusion, reasons, summary)
  yaml      - the whole engine decide() with the YAML twin
  rp_input / rp_query / rp_parse - regopy split into its parts: building and setting the
              C-API input; rego-cpp's query (evaluation plus rego-cpp's own serialization of
              the result); copying and json-parsing that result in Python
  regopy_floor / opa_floor - each engine given the same input and returning the very same
              decision document from data with no logic at all: the cost of getting a
              decision of this size in and out, which no rewrite of the policy can remove
Run: ``.venv/bin/python benchmarks/rego.py`` (needs scripts/fetch_opa_evaluator.sh).
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.decide import decide  # noqa: E402
from engine.fusion import fuse  # noqa: E402
from engine.models import DecisionRequest  # noqa: E402
from engine.opa_local import missing_message, opa_engine_class  # noqa: E402
from engine.policy import PolicyRepository  # noqa: E402
from engine.policy_rego import (  # noqa: E402
    FastInput,
    RegoEvaluator,
    _lib,
    compile_rego,
    mount_data,
    request_input,
)
from tests.engine.rego import requests as gen  # noqa: E402

TWINS = {
    "support-password-reset-rego": "support-password-reset",
    "payout-authorization-rego": "payout-authorization",
}
N = 2000


def timed(fn, items):
    out = np.empty(len(items))
    for i, x in enumerate(items):
        t = time.perf_counter_ns()
        fn(x)
        out[i] = (time.perf_counter_ns() - t) / 1000
    return out


def pct(a):
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def floor_engines(outs: list, opa_cls) -> tuple:
    """regopy and OPA returning ``outs[input.i]`` from data: I/O and output cost only."""
    src = "package liveguard.floor\n\nimport rego.v1\n\ndecision := data.liveguard_data.floor.out[input.i]\n"
    problems: list[str] = []
    compiled = compile_rego(
        {"policy.rego": src},
        {"out": outs},
        "floor",
        "liveguard/floor/decision",
        where=ROOT,
        problems=problems,
    )
    assert compiled is not None, problems
    ev = RegoEvaluator(compiled, None)
    opa = opa_cls()
    opa.add_policy("floor.rego", src)
    opa.add_data(mount_data("floor", {"out": outs}))
    return ev.evaluate_document, lambda d: opa.eval_document("liveguard.floor.decision", d)


def regopy_parts(ev, docs) -> dict:
    """regopy's time per decision split into input, rego-cpp query, and Python parse."""
    c = ev.compiled
    rego, bundle, entry = c.interpreter._impl, c.bundle._impl, c.entrypoint.encode()
    parts = {
        "rp_input": np.empty(len(docs)),
        "rp_query": np.empty(len(docs)),
        "rp_parse": np.empty(len(docs)),
    }
    for i, d in enumerate(docs):
        t0 = time.perf_counter_ns()
        value = FastInput(d)
        _lib.regoSetInput(rego, value._impl)
        t1 = time.perf_counter_ns()
        out = _lib.regoBundleQueryEntrypoint(rego, bundle, entry)
        t2 = time.perf_counter_ns()
        size = _lib.regoOutputJSONSize(out)
        buf = ctypes.create_string_buffer(size)
        _lib.regoOutputJSON(out, buf, size)
        json.loads(buf.value)["expressions"][0]
        t3 = time.perf_counter_ns()
        _lib.regoFreeOutput(out)
        parts["rp_input"][i] = (t1 - t0) / 1000
        parts["rp_query"][i] = (t2 - t1) / 1000
        parts["rp_parse"][i] = (t3 - t2) / 1000
    return parts


def main() -> None:
    opa_cls = opa_engine_class()
    if opa_cls is None:
        raise SystemExit(missing_message())
    repo = PolicyRepository(ROOT / "policies")
    results = {}
    for rego_id, yaml_id in TWINS.items():
        rego, yaml_twin = repo.get(rego_id), repo.get(yaml_id)
        ev = rego.evaluator
        kind = "payout_authorization" if "payout" in rego_id else "password_reset"
        reqs = [DecisionRequest.model_validate(r) for r in gen.bulk(N, seed=3, kind=kind)]
        prepared = []
        for r in reqs:
            view = rego.view(r)
            fused = fuse(view.signals, rego.fusion)
            deg = fused.evidence_mass < rego.fusion.min_evidence
            prepared.append((view, fused, deg))
        full = [request_input(*p) for p in prepared]
        pruned = [ev.compiled.projector.apply(d) for d in full]
        opa = opa_cls()
        for name, src in ev.compiled.modules.items():
            opa.add_policy(name, src)
        opa.add_data(mount_data(ev.compiled.package, ev.compiled.data))
        path = ev.compiled.query_path
        for d in pruned[:200]:  # warm up both engines
            ev.evaluate_document(d)
            opa.eval_document(path, d)
        outs = [ev.evaluate_document(d) for d in pruned]
        floor_r, floor_o = floor_engines(outs, opa_cls)
        indexed = [dict(d, i=i) for i, d in enumerate(pruned)]
        t = {
            "input": timed(lambda p: ev.input_for(*p), prepared),  # noqa: B023 (called before the loop moves on)
            "regopy": timed(ev.evaluate_document, pruned),
            "opa_full": timed(lambda d: opa.eval_document(path, d), full),  # noqa: B023 (called before the loop moves on)
            "opa_pruned": timed(lambda d: opa.eval_document(path, d), pruned),  # noqa: B023 (called before the loop moves on)
            "decide": timed(lambda r: decide(r, rego), reqs),  # noqa: B023 (called before the loop moves on)
            "yaml": timed(lambda r: decide(r, yaml_twin), reqs),  # noqa: B023 (called before the loop moves on)
            **regopy_parts(ev, pruned),
            "regopy_floor": timed(floor_r, indexed),
            "opa_floor": timed(floor_o, indexed),
        }
        results[rego_id] = {k: pct(v) for k, v in t.items()}
        print(f"{rego_id} ({N} requests; µs p50/p99)")
        for k, (p50, p99) in results[rego_id].items():
            print(f"  {k:<11} {p50:8.1f} {p99:8.1f}")
        r = results[rego_id]
        print(
            f"  regopy/opa_pruned p50 ratio {r['regopy'][0] / r['opa_pruned'][0]:.2f}; "
            f"(input+regopy)/opa_full {(r['input'][0] + r['regopy'][0]) / r['opa_full'][0]:.2f}"
        )
        print(
            f"  above the I/O floor (policy logic): regopy "
            f"{r['regopy'][0] - r['regopy_floor'][0]:.1f} µs, OPA "
            f"{r['opa_pruned'][0] - r['opa_floor'][0]:.1f} µs; floors alone "
            f"{r['regopy_floor'][0]:.1f} vs {r['opa_floor'][0]:.1f} µs"
        )
    spr = results["support-password-reset-rego"]
    pay = results["payout-authorization-rego"]
    print(
        "RESULT "
        + " ".join(
            f"{name}_{k}_p50_us={v[0]:.1f} {name}_{k}_p99_us={v[1]:.1f}"
            for name, res in (("spr", spr), ("payout", pay))
            for k, v in res.items()
            if k
            in ("regopy", "opa_pruned", "opa_full", "decide", "yaml", "regopy_floor", "opa_floor")
        )
        + f" spr_ratio_regopy_vs_opa={spr['regopy'][0] / spr['opa_pruned'][0]:.2f}"
        + f" payout_ratio_regopy_vs_opa={pay['regopy'][0] / pay['opa_pruned'][0]:.2f}"
    )


if __name__ == "__main__":
    main()
