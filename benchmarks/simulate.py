"""Simulation throughput end to end: Parquet corpus in → backtest metrics out.

Run by hand: ``.venv/bin/python benchmarks/simulate.py [--sessions N]``. Generates a seeded
corpus from the scenario catalog (not timed), then per bundled YAML policy times
(a) the vectorized evaluation alone and (b) end to end: read the Parquet file, build the
columns, evaluate, and compute every metric overall and per scenario. The policy's
``applies_to`` is ignored (``any_scope``) so every policy decides every session. With
``--jobs N`` (default 2) end to end runs the row groups in N worker processes, each reading
and evaluating its share, the parent reading only ground truth and computing the metrics.
Target (DESIGN): ≥ 50,000,000 session decisions per minute end to end on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The repository, not this folder (benchmarks/http.py would shadow the stdlib's http).
sys.path[0] = str(ROOT)

from engine import PolicyRepository  # noqa: E402
from simulations.backtest import evaluate, metrics, policy_columns  # noqa: E402
from simulations.corpus import (  # noqa: E402
    batch_from_corpus,
    generate_corpus,
    read_corpus,
    write_corpus,
)
from simulations.scenarios import load_catalog  # noqa: E402
from simulations.vectorized import VectorizedPolicy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes end to end (row groups)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.parquet"
        t0 = time.perf_counter()
        write_corpus(generate_corpus(load_catalog(), args.sessions, args.seed), path)
        print(
            f"generated {args.sessions:,} sessions in {time.perf_counter() - t0:.1f} s "
            f"({path.stat().st_size / 1e6:.0f} MB Parquet)"
        )
        repo = PolicyRepository(ROOT / "policies")
        # What the parent reads when workers evaluate: ground truth and scope only.
        ground_truth = [
            "scenario",
            "attack",
            "attack_type",
            "session.channel",
            "session.kind",
            "session.consent.media_analysis",
            "session.consent.raw_media_escalation",
        ]
        policies = [p for p in repo.all() if p.spec is not None]
        print(f"{'policy':<26}{'decide/min':>16}{'end-to-end/min':>16}{'e2e s':>8}")
        eval_rates, e2e_rates = [], []
        for policy in policies:
            e2e, ev_t = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                # Only the columns this policy reads, as `simulate run` does.
                table, _ = read_corpus(path, columns=policy_columns(policy))
                batch = batch_from_corpus(table)
                t1 = time.perf_counter()
                VectorizedPolicy(policy).evaluate(batch)
                ev_t.append(time.perf_counter() - t1)
                if args.jobs > 1:  # workers read and evaluate their row groups themselves
                    t0 = time.perf_counter()
                    table, _ = read_corpus(path, columns=ground_truth)
                    ev = evaluate(
                        policy,
                        table,
                        any_scope=True,
                        timing=False,
                        jobs=args.jobs,
                        repo_root=ROOT / "policies",
                        ref=policy.id,
                        corpus_path=path,
                    )
                    m = metrics(ev, table)
                    e2e.append(time.perf_counter() - t0)
                else:
                    m = metrics(evaluate(policy, table, any_scope=True, timing=False), table)
                    e2e.append(time.perf_counter() - t0 - ev_t[-1])  # evaluate() ran once more
                assert m["overall"]["sessions"] == args.sessions
            rate = args.sessions / statistics.median(ev_t) * 60
            e2e_rate = args.sessions / statistics.median(e2e) * 60
            eval_rates.append(rate)
            e2e_rates.append(e2e_rate)
            print(f"{policy.id:<26}{rate:>16,.0f}{e2e_rate:>16,.0f}{statistics.median(e2e):>8.2f}")
    print(
        f"\nslowest policy end to end: {min(e2e_rates):,.0f} session decisions/min "
        "(target ≥ 50,000,000)"
    )
    print(f"RESULT decisions_per_min={min(eval_rates):.0f} end_to_end_per_min={min(e2e_rates):.0f}")


if __name__ == "__main__":
    main()
