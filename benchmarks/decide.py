"""In-process decision speed: liveguard's YAML path vs the same logic in regopy and ZEN.

regopy runs each policy's Rego twin (``policies/<id>-rego``) through the full ``decide()``;
a policy without a twin runs exported as data plus the generic Rego evaluator
(``engine.backends.export``), timed over view + fusion + input + regopy evaluation (marked
``regopy*``), so every policy gets a regopy figure. ZEN runs a graph translated from the YAML policy (``_translate_zen.py``), fed the same
minimized context and fusion.

Run by hand: ``.venv/bin/python benchmarks/decide.py [--iterations N]``. Requests are the
bundled policies' own test cases (realistic, varied). Every engine gets the same requests in
the same process; baselines include the same fusion and input conversion so the ratio
compares whole decisions. Ends with one ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _translate_zen import graph, zen_input  # noqa: E402

from engine import decide  # noqa: E402
from engine.backends.export import ExportedYamlEvaluator  # noqa: E402
from engine.core.fusion import fuse  # noqa: E402
from engine.core.models import DecisionRequest  # noqa: E402
from engine.core.policy import Policy  # noqa: E402
from engine.policy.repository import PolicyRepository  # noqa: E402
from engine.policy.testsuite import build_request, load_suite  # noqa: E402


def requests_for(policy: Policy) -> list[DecisionRequest]:
    suite = load_suite(policy.path)
    return [build_request(suite.defaults, case) for case in suite.cases]


def measure(
    fn: Callable[[DecisionRequest], object], reqs: list[DecisionRequest], n: int
) -> list[float]:
    for r in reqs * 20:  # warm caches and the allocator
        fn(r)
    samples = []
    perf = time.perf_counter_ns
    gc.collect()
    for i in range(n):
        r = reqs[i % len(reqs)]
        t0 = perf()
        fn(r)
        samples.append((perf() - t0) / 1000.0)
    return samples


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def zen_runner(policy: Policy) -> Callable[[DecisionRequest], str]:
    import zen

    spec = policy.spec
    decision = zen.ZenEngine().create_decision(graph(spec))
    fields = sorted(
        {f for f in spec.condition_fields() if not f.startswith(("fused.", "signals."))}
    )

    def run(req: DecisionRequest) -> str:
        view = policy.view(req)
        fused = fuse(view.signals, policy.fusion)
        degraded = fused.evidence_mass < policy.fusion.min_evidence
        data = zen_input(view.ctx, fused.risk, degraded, fields)
        for f in spec.condition_fields():
            if f.startswith("signals."):
                data[f.replace(".", "__")] = view.ctx.get(f)
        return decision.evaluate(data)["result"]["action"]

    return run


def regopy_runner(
    policy: Policy, repo: PolicyRepository
) -> Callable[[DecisionRequest], str] | None:
    """The same policy written in Rego (its ``<id>-rego`` twin), decided through regopy;
    without a twin, the YAML policy exported to the generic Rego evaluator."""
    twin_id = f"{policy.id}-rego"
    if twin_id not in repo.ids():
        return exported_runner(policy)
    twin = repo.get(twin_id)

    def run(req: DecisionRequest) -> str:
        return decide(req, twin).action.value

    return run


def exported_runner(policy: Policy) -> Callable[[DecisionRequest], str]:
    """The YAML policy as data + the generic Rego evaluator in regopy, compiled once; each
    call does the whole path: view, fusion, input conversion, evaluation, validation."""
    evaluator = ExportedYamlEvaluator(policy)
    min_evidence = policy.fusion.min_evidence

    def run(req: DecisionRequest) -> str:
        view = policy.view(req)
        fused = fuse(view.signals, policy.fusion)
        return evaluator.evaluate(view, fused, fused.evidence_mass < min_evidence).action.value

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20_000)
    ap.add_argument("--baseline-iterations", type=int, default=2_000)
    args = ap.parse_args()
    repo = PolicyRepository(ROOT / "policies")
    policies = [p for p in repo.all() if p.manifest.engine == "yaml"]
    all_yaml: list[float] = []
    all_zen: list[float] = []
    all_rego: list[float] = []
    yaml_with_rego: list[float] = []
    print(f"{'policy':<26}{'engine':<8}{'p50 µs':>10}{'p99 µs':>10}{'decisions/s':>14}  agree")
    for policy in policies:
        reqs = requests_for(policy)
        yaml_s = measure(lambda r, p=policy: decide(r, p), reqs, args.iterations)
        all_yaml += yaml_s
        expected = [decide(r, policy).action.value for r in reqs]
        rows = [("yaml", yaml_s, "-")]
        zen_run = zen_runner(policy)
        zen_s = measure(zen_run, reqs, args.baseline_iterations)
        all_zen += zen_s
        rows.append(
            (
                "zen",
                zen_s,
                f"{sum(zen_run(r) == e for r, e in zip(reqs, expected, strict=True))}/{len(reqs)}",
            )
        )
        rego_run = regopy_runner(policy, repo)
        if rego_run is not None:
            rego_s = measure(rego_run, reqs, args.baseline_iterations)
            all_rego += rego_s
            yaml_with_rego += yaml_s
            twin = f"{policy.id}-rego" in repo.ids()
            rows.append(
                (
                    "regopy" if twin else "regopy*",
                    rego_s,
                    f"{sum(rego_run(r) == e for r, e in zip(reqs, expected, strict=True))}/{len(reqs)}",
                )
            )
        for name, s, agree in rows:
            med = statistics.median(s)
            print(
                f"{policy.id:<26}{name:<8}{med:>10.1f}{pct(s, 0.99):>10.1f}{1e6 / med:>14,.0f}  {agree}"
            )
    p50, p99 = statistics.median(all_yaml), pct(all_yaml, 0.99)
    zen_ratio = statistics.median(all_zen) / p50
    # regopy (twin or export) is compared with the YAML p50 of the same policies.
    rego_ratio = (
        statistics.median(all_rego) / statistics.median(yaml_with_rego)
        if all_rego
        else float("nan")
    )
    print()
    print(
        f"yaml decide(): p50 {p50:.1f} µs, p99 {p99:.1f} µs, {1e6 / p50:,.0f} decisions/s (target p50 ≤ 25 µs)"
    )
    print(f"zen:    p50 {statistics.median(all_zen):.1f} µs → {zen_ratio:.1f}× slower than yaml")
    if all_rego:
        print(
            f"regopy: p50 {statistics.median(all_rego):.1f} µs → {rego_ratio:.1f}× slower than yaml"
            " (regopy*: exported YAML policy, no Rego twin)"
        )
    else:
        print("regopy: not measured")
    print(
        f"RESULT p50_us={p50:.1f} p99_us={p99:.1f} regopy_ratio={rego_ratio:.1f} zen_ratio={zen_ratio:.1f}"
    )


if __name__ == "__main__":
    main()
