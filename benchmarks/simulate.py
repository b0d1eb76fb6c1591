"""Simulation throughput end to end: Parquet corpus in → backtest metrics out.

Run by hand: ``.venv/bin/python benchmarks/simulate.py [--sessions N] [--threads T]``.
Generates a seeded corpus from the scenario catalog (not timed), then per bundled YAML
policy times, ``--repeats`` times each:

* the vectorized evaluation alone, one thread (columns already built);
* end to end in one thread, and end to end in ``--threads`` threads (default 2): read the
  Parquet file (only the columns the policy reads, as ``simulate run`` does), build the
  columns, evaluate every session, and compute every metric overall and per scenario.
  With ``--jobs N`` > 1 the worker-process path runs instead of the threaded one.

The policy's ``applies_to`` is ignored (``any_scope``) so every policy decides every session.
Prints medians and the fastest run, the CPU seconds a run used (all threads; on a shared
machine the wall time also counts the other processes' turns), and the ratio of the
threaded to the one-thread run measured in this same process.

Target (issue 14): ≥ 50,000,000 session decisions per minute end to end on 2 cores. Measured
on the development machine (2 cores shared with four other sessions), ``--sessions 2000000``,
slowest bundled YAML policy, medians of 5: end to end 153 M/min with 2 threads at load average
5.8 (one thread 157 M/min, fastest run 186 M/min), 95 M/min at load 8.7, 94 M/min at load
4.0, 55 M/min at load 11; evaluation alone 199-240 M/min. The implementation before (commit 18f5f84) gave
11 M/min end to end at load 7 on the same policies. 0.6-0.9 CPU-seconds per run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The repository, not this folder (benchmarks/http.py would shadow the stdlib's http).
sys.path[0] = str(ROOT)

from engine import PolicyRepository  # noqa: E402
from engine.core.policy import Policy  # noqa: E402
from simulations.backtest import evaluate, metrics, policy_columns  # noqa: E402
from simulations.corpus import (  # noqa: E402
    batch_from_corpus,
    generate_corpus,
    read_corpus,
    write_corpus,
)
from simulations.scenarios import load_catalog  # noqa: E402
from simulations.vectorized import VectorizedPolicy  # noqa: E402

#: What the parent reads when worker processes evaluate (--jobs): ground truth and scope.
GROUND_TRUTH = [
    "scenario",
    "attack",
    "attack_type",
    "session.channel",
    "session.kind",
    "session.consent.media_analysis",
    "session.consent.raw_media_escalation",
]


def end_to_end(policy: Policy, path: Path, threads: int, jobs: int) -> tuple[float, float, int]:
    """One run: (wall seconds, CPU seconds, sessions in the overall metrics)."""
    t0, c0 = time.perf_counter(), time.process_time()
    if jobs > 1:  # workers read and evaluate their row groups themselves
        table, _ = read_corpus(path, columns=GROUND_TRUTH)
        ev = evaluate(
            policy,
            table,
            any_scope=True,
            timing=False,
            jobs=jobs,
            repo_root=ROOT / "policies",
            ref=policy.id,
            corpus_path=path,
        )
    else:
        table, _ = read_corpus(path, columns=policy_columns(policy))
        ev = evaluate(policy, table, any_scope=True, timing=False, threads=threads)
    m = metrics(ev, table)
    return time.perf_counter() - t0, time.process_time() - c0, m["overall"]["sessions"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="threads end to end")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes instead (> 1)")
    args = ap.parse_args()
    n = args.sessions
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.parquet"
        t0 = time.perf_counter()
        write_corpus(generate_corpus(load_catalog(), n, args.seed), path)
        print(
            f"generated {n:,} sessions in {time.perf_counter() - t0:.1f} s "
            f"({path.stat().st_size / 1e6:.0f} MB Parquet); load average {load:.1f}"
        )
        repo = PolicyRepository(ROOT / "policies")
        policies = [p for p in repo.all() if p.spec is not None]
        par = f"jobs×{args.jobs}" if args.jobs > 1 else f"threads×{args.threads}"
        print(
            f"{'policy':<24}{'evaluate/min':>14}{'e2e 1 thread':>14}{'e2e ' + par:>14}"
            f"{'ratio':>7}{'median s':>10}{'min s':>7}{'cpu s':>7}"
        )
        eval_rates, one_rates, par_rates, par_best = [], [], [], []
        for policy in policies:
            table, _ = read_corpus(path, columns=policy_columns(policy))
            batch = batch_from_corpus(table)
            vp = VectorizedPolicy(policy)
            ev_t, one, many, cpu = [], [], [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                vp.evaluate(batch)
                ev_t.append(time.perf_counter() - t0)
                wall, _, sessions = end_to_end(policy, path, 1, 1)
                assert sessions == n
                one.append(wall)
                wall, cpu_s, sessions = end_to_end(policy, path, args.threads, args.jobs)
                assert sessions == n
                many.append(wall)
                cpu.append(cpu_s)
            del table, batch
            eval_rates.append(n / statistics.median(ev_t) * 60)
            one_rates.append(n / statistics.median(one) * 60)
            par_rates.append(n / statistics.median(many) * 60)
            par_best.append(n / min(many) * 60)
            print(
                f"{policy.id:<24}{eval_rates[-1] / 1e6:>12.0f} M{one_rates[-1] / 1e6:>12.0f} M"
                f"{par_rates[-1] / 1e6:>12.0f} M{statistics.median(one) / statistics.median(many):>6.2f}x"
                f"{statistics.median(many):>10.2f}{min(many):>7.2f}{statistics.median(cpu):>7.2f}"
            )
    print(
        f"\nslowest policy end to end ({par}): median {min(par_rates):,.0f}, "
        f"fastest run {min(par_best):,.0f} session decisions/min (target ≥ 50,000,000); "
        f"load average {load:.1f} → {os.getloadavg()[0]:.1f}"
    )
    print(
        f"RESULT decisions_per_min={min(eval_rates):.0f} end_to_end_per_min={min(par_rates):.0f} "
        f"end_to_end_best_per_min={min(par_best):.0f} "
        f"end_to_end_1thread_per_min={min(one_rates):.0f} load={load:.1f}"
    )


if __name__ == "__main__":
    main()
