"""Backtests: a policy version over a corpus → the metrics the board reads.

YAML policies are evaluated vectorized (``simulations.vectorized``: the same compiled
conditions that serve live traffic, proven equal to ``decide()`` in the tests); Rego
policies go through ``decide()`` itself in a bounded pool of worker processes. Only the
sessions the policy applies to (its ``applies_to``) count, as in the service.

Metrics, overall and per scenario: action mix; false-positive rate of legitimate sessions
at three levels (step_up or harder, review or harder, block); catch rate per attack type
(step_up or harder); interruption rate (legitimate sessions given anything beyond ``log``);
review-queue load per 1,000 sessions and per hour at a stated traffic level; expected cost
from the policy's declared cost table; raw-media escalations per 1,000 sessions (privacy
exceptions); decision-time percentiles of the serving path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine import PolicyRepository, decide
from engine.core.models import Action, SecondPassObligation
from engine.core.policy import Policy
from simulations.corpus import (
    ROW_GROUP,
    batch_from_corpus,
    codes,
    columns_for,
    corpus_metadata,
    read_row_groups,
    requests_from_corpus,
)
from simulations.progress import progress_bar
from simulations.tally import group_metrics, tally
from simulations.vectorized import SEVERITY, VectorizedPolicy

__all__ = [
    "DEFAULT_SESSIONS_PER_HOUR",
    "Evaluated",
    "backtest",
    "evaluate",
    "in_scope",
    "metrics",
]

DEFAULT_SESSIONS_PER_HOUR = 10_000
#: Sessions timed through decide() for the decision-time percentiles of a YAML policy.
TIMING_SAMPLE = 2_000
#: Rego sessions per worker task, and the most worker processes.
REGO_CHUNK = 2_000
#: Sessions per slice a thread evaluates (whole row groups of a corpus file, see
#: ``corpus.ROW_GROUP``: their columns are single Arrow chunks, read without copying), and
#: the most threads.
THREAD_SLICE = ROW_GROUP
MAX_THREADS = 32
STEP_UP, REVIEW, BLOCK = SEVERITY[Action.step_up], SEVERITY[Action.review], SEVERITY[Action.block]


@dataclass(frozen=True)
class Evaluated:
    """One policy version's answers for the in-scope sessions of a corpus."""

    policy: Policy
    rows: np.ndarray  # corpus row indices that are in scope
    action: np.ndarray  # int8 severities
    risk: np.ndarray
    escalated: np.ndarray  # raw media may leave the edge (second pass with raw media)
    latency_us: np.ndarray  # per timed decision
    seconds: float
    mode: str


def _sample_latency(policy: Policy, table: pa.Table, rows: np.ndarray, timing: bool) -> np.ndarray:
    """decide()'s time per decision on an even sample of the in-scope ``rows`` of ``table``."""
    if not timing or len(rows) == 0:
        return np.array([], dtype=np.int64)
    sample = np.linspace(0, len(rows) - 1, min(TIMING_SAMPLE, len(rows))).astype(int)
    return np.array(_timed(policy, requests_from_corpus(table, rows[sample].tolist()))[1])


def _rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    return table if len(rows) == table.num_rows else table.take(pa.array(rows))


def _member(col: pa.ChunkedArray, allowed: list[str]) -> np.ndarray:
    values, idx = codes(col)
    ok = np.array([v in allowed for v in values] + [False])
    return ok[idx]


def policy_columns(policy: Policy) -> list[str] | None:
    """The corpus columns a YAML policy's vectorized backtest reads (None: all, for Rego)."""
    if policy.spec is None:
        return None
    fields = set(policy.spec.condition_fields()) | set(policy.fields_read())
    return columns_for(fields, set(policy.spec.fusion.weights))


def in_scope(policy: Policy, table: pa.Table) -> np.ndarray:
    """Rows whose channel and kind the policy's applies_to covers."""
    scope = policy.manifest.applies_to
    ok = _member(table.column("session.channel"), list(scope.channels))
    if "*" not in scope.kinds:
        ok &= _member(table.column("session.kind"), list(scope.kinds))
    return np.flatnonzero(ok)


def _escalations(
    policy: Policy, table: pa.Table, action: np.ndarray, risk: np.ndarray, degraded: np.ndarray
) -> np.ndarray:
    """Vectorized ``decide``'s second-pass obligation with raw media allowed."""
    spec = policy.spec
    n = len(action)
    if spec is None or spec.second_pass is None or not spec.second_pass.raw_media:
        return np.zeros(n, dtype=bool)
    if not policy.dataflow.raw_media_escalation_allowed():
        return np.zeros(n, dtype=bool)
    sp = spec.second_pass
    lo, hi = sp.band
    in_band = (risk >= lo) & (risk < hi)
    wants = (action < BLOCK) & (in_band | (degraded & sp.on_degraded))
    media = table.column("session.consent.media_analysis").to_numpy(zero_copy_only=False)
    raw = table.column("session.consent.raw_media_escalation").to_numpy(zero_copy_only=False)
    return wants & media.astype(bool) & raw.astype(bool)


def _timed(
    policy: Policy, requests: Sequence[Any]
) -> tuple[list[int], list[int], list[float], list[bool]]:
    actions, latency, risks, escalated = [], [], [], []
    for req in requests:
        t0 = time.perf_counter_ns()
        d = decide(req, policy)
        latency.append((time.perf_counter_ns() - t0) // 1000)
        actions.append(SEVERITY[d.action])
        risks.append(d.risk)
        escalated.append(
            any(isinstance(o, SecondPassObligation) and o.raw_media_allowed for o in d.obligations)
        )
    return actions, latency, risks, escalated


_WORKER: dict[str, Any] = {}


def _rego_chunk(root: str, ref: str, corpus: str, rows: list[int]) -> tuple:
    # One repository and one corpus read per worker process, reused across its chunks.
    key = f"{root}|{ref}|{corpus}"
    if _WORKER.get("key") != key:
        import pyarrow.parquet as pq

        _WORKER.update(
            key=key, policy=PolicyRepository(Path(root)).get(ref), table=pq.read_table(corpus)
        )
    reqs = requests_from_corpus(_WORKER["table"], rows)
    return _timed(_WORKER["policy"], reqs)


def _vectorized(
    vp: VectorizedPolicy, chunk: pa.Table, any_scope: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One slice of a corpus: (in-scope rows of the slice, action, risk, escalated)."""
    rows = np.arange(chunk.num_rows) if any_scope else in_scope(vp.policy, chunk)
    sub = _rows(chunk, rows)
    res = vp.evaluate(batch_from_corpus(sub))
    return (
        rows,
        res.action,
        res.risk,
        _escalations(vp.policy, sub, res.action, res.risk, res.degraded),
    )


def _yaml_threads(
    policy: Policy, table: pa.Table, any_scope: bool, threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The corpus in slices of whole row groups, ``threads`` of them evaluated at once;
    the slices come back in order, so the result does not depend on ``threads``. One thread
    goes slice by slice too: a slice's arrays stay in the CPU cache between the operations
    of a pass, where a whole corpus's would go to memory and back at each."""
    vp = VectorizedPolicy(policy)
    n = table.num_rows
    threads = max(1, min(threads, MAX_THREADS))
    if n <= THREAD_SLICE:
        rows, action, risk, esc = _vectorized(vp, table, any_scope)
        return rows, action, risk, esc
    starts = range(0, n, THREAD_SLICE)

    def one(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return _vectorized(vp, table.slice(start, THREAD_SLICE), any_scope)

    if threads == 1:
        parts = [one(start) for start in starts]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(one, starts))
    rows = np.concatenate([p[0] + start for p, start in zip(parts, starts, strict=True)])
    return (
        rows,
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
    )


def _yaml_chunk(
    root: str, ref: str, corpus: str, groups: list[int], columns: list[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One worker's row groups, every session evaluated: (action, risk, escalated)."""
    key = f"yaml|{root}|{ref}"
    if _WORKER.get("yaml") != key:
        policy = PolicyRepository(Path(root)).get(ref)
        _WORKER.update(yaml=key, vpolicy=VectorizedPolicy(policy))
    table, _ = read_row_groups(Path(corpus), groups, columns)
    _, action, risk, esc = _vectorized(_WORKER["vpolicy"], table, any_scope=True)
    return action, risk, esc


def _split_groups(corpus: Path, parts: int) -> list[list[int]]:
    n = pq.ParquetFile(corpus).metadata.num_row_groups
    return [g.tolist() for g in np.array_split(np.arange(n), min(parts, n)) if g.size]


def _yaml_parallel(
    policy: Policy, repo_root: Path, ref: str, corpus: Path, jobs: int, dask: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every session of the corpus file, evaluated by row groups in processes or on Dask;
    chunks come back in file order, so the result is the local run's."""
    cols = policy_columns(policy)
    if dask is not None:
        from distributed import Client

        with Client(dask) as client:
            parts = _split_groups(corpus, max(1, sum(client.nthreads().values())) * 2)
            futures = client.map(
                _yaml_chunk,
                [str(repo_root)] * len(parts),
                [ref] * len(parts),
                [str(corpus)] * len(parts),
                parts,
                [cols] * len(parts),
                pure=False,
            )
            results = client.gather(futures)
    else:
        parts = _split_groups(corpus, jobs)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            results = list(
                pool.map(
                    _yaml_chunk,
                    [str(repo_root)] * len(parts),
                    [ref] * len(parts),
                    [str(corpus)] * len(parts),
                    parts,
                    [cols] * len(parts),
                )
            )
    action = np.concatenate([r[0] for r in results])
    risk = np.concatenate([r[1] for r in results])
    esc = np.concatenate([r[2] for r in results])
    return action, risk, esc


def evaluate(
    policy: Policy,
    table: pa.Table,
    *,
    repo_root: Path | None = None,
    ref: str | None = None,
    corpus_path: Path | None = None,
    jobs: int = 1,
    any_scope: bool = False,
    timing: bool = True,
    dask: str | None = None,
    threads: int = 1,
) -> Evaluated:
    """The policy's actions on the corpus's in-scope sessions.

    A YAML policy is evaluated in this process, by slices of ``threads`` threads at once
    (numpy and Arrow release the GIL, so threads share the cores without copying the
    corpus), unless ``jobs`` > 1 or ``dask`` hand its row groups to worker processes.

    Rego needs ``repo_root``, ``ref`` and ``corpus_path`` so each worker process loads the
    policy and reads the corpus itself (nothing compiled crosses a process boundary).
    """
    t0 = time.perf_counter()
    distributed = (jobs > 1 or dask is not None) and None not in (repo_root, ref, corpus_path)
    if policy.spec is not None and not distributed:
        rows, action, risk, esc = _yaml_threads(policy, table, any_scope, threads)
        seconds = time.perf_counter() - t0
        mode = "vectorized" if threads <= 1 else f"vectorized, threads×{threads}"
        return Evaluated(
            policy,
            rows,
            action,
            risk,
            esc,
            _sample_latency(policy, table, rows, timing),
            seconds,
            mode,
        )
    rows = np.arange(table.num_rows) if any_scope else in_scope(policy, table)
    if policy.spec is not None:
        if pq.ParquetFile(corpus_path).metadata.num_rows != table.num_rows:  # type: ignore[arg-type]
            raise ValueError("the corpus table must be the whole corpus file")
        action, risk, esc = _yaml_parallel(policy, repo_root, ref, corpus_path, jobs, dask)  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        mode = f"vectorized on dask {dask}" if dask else f"vectorized, processes×{jobs}"
        return Evaluated(
            policy,
            rows,
            action[rows],
            risk[rows],
            esc[rows],
            _sample_latency(policy, table, rows, timing),
            seconds,
            mode,
        )
    if repo_root is None or ref is None or corpus_path is None:
        raise ValueError("a Rego backtest needs the repository, the policy ref and the corpus file")
    jobs = max(1, min(jobs, os.cpu_count() or 1))
    chunks = [rows[i : i + REGO_CHUNK].tolist() for i in range(0, len(rows), REGO_CHUNK)]
    actions: list[int] = []
    latency = []
    risks: list[float] = []
    escalated: list[bool] = []
    with (
        ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool,
        progress_bar() as bar,
    ):
        task = bar.add_task(f"{policy.id}: decide() per session", total=len(rows))
        # map() yields in submission order: the result does not depend on worker timing.
        for chunk, (a, lat, r, e) in zip(
            chunks,
            pool.map(
                _rego_chunk,
                [str(repo_root)] * len(chunks),
                [ref] * len(chunks),
                [str(corpus_path)] * len(chunks),
                chunks,
            ),
            strict=True,
        ):
            actions += a
            latency += lat
            risks += r
            escalated += e
            bar.advance(task, len(chunk))
    seconds = time.perf_counter() - t0
    return Evaluated(
        policy,
        rows,
        np.array(actions, dtype=np.int8),
        np.array(risks),
        np.array(escalated, dtype=bool),
        np.array(latency),
        seconds,
        f"processes×{jobs}",
    )


def metrics(
    ev: Evaluated, table: pa.Table, *, sessions_per_hour: int = DEFAULT_SESSIONS_PER_HOUR
) -> dict[str, Any]:
    """Overall and per-scenario metrics of one evaluation (JSON-ready), all read from one
    count table of the in-scope sessions."""
    all_rows = len(ev.rows) == table.num_rows

    def column(name: str) -> tuple[list[Any], np.ndarray]:
        values, idx = codes(table.column(name))
        return values, (idx if all_rows else idx[ev.rows])

    attack = table.column("attack").to_numpy(zero_copy_only=False).astype(bool)
    t = tally(
        ev.action,
        ev.escalated,
        attack if all_rows else attack[ev.rows],
        column("scenario"),
        column("attack_type"),
    )
    spec = ev.policy.spec
    costs = spec.costs if spec is not None else None
    per: dict[str, Any] = {}
    for s in sorted({name for name in t.scenarios if name is not None}):
        c = t.counts[[i for i, name in enumerate(t.scenarios) if name == s]].sum(axis=0)
        if c.sum():
            per[s] = group_metrics(c, t.attack_types, costs, sessions_per_hour)
    lat = ev.latency_us
    meta = corpus_metadata(table)
    p = ev.policy
    return {
        "policy": {
            "id": p.id,
            "version": p.manifest.version,
            "digest": p.digest,
            "engine": p.manifest.engine,
            "ref": p.git_ref,
        },
        "corpus": {
            "sessions": table.num_rows,
            "in_scope": len(ev.rows),
            "seed": meta.get("seed"),
            "profile": meta.get("profile"),
            "hand_set_signals": {
                s["id"]: sorted(k for k, v in s["signals"].items() if v != "profile")
                for s in meta.get("scenarios", [])
                if s["id"] in per  # only the scenarios this policy's sessions came from
            },
        },
        "sessions_per_hour": sessions_per_hour,
        "costs": None
        if costs is None
        else {
            "currency": costs.currency,
            "legitimate": {a.value: v for a, v in costs.legitimate.items()},
            "attack": {a.value: v for a, v in costs.attack.items()},
        },
        "costs_declared": costs is not None,
        "overall": group_metrics(t.counts.sum(axis=0), t.attack_types, costs, sessions_per_hour),
        "scenarios": per,
        "decision_time_us": {
            "timed": len(lat),
            "p50": float(np.percentile(lat, 50)) if len(lat) else None,
            "p95": float(np.percentile(lat, 95)) if len(lat) else None,
            "p99": float(np.percentile(lat, 99)) if len(lat) else None,
        },
        "evaluation": {
            "mode": ev.mode,
            "seconds": ev.seconds,
            "decisions_per_min": len(ev.rows) / ev.seconds * 60 if ev.seconds > 0 else None,
        },
    }


def backtest(
    repo: PolicyRepository,
    ref: str,
    table: pa.Table,
    *,
    corpus_path: Path | None = None,
    jobs: int = 1,
    sessions_per_hour: int = DEFAULT_SESSIONS_PER_HOUR,
    any_scope: bool = False,
    dask: str | None = None,
    threads: int = 1,
) -> tuple[Evaluated, dict[str, Any]]:
    policy = repo.get(ref)
    ev = evaluate(
        policy,
        table,
        repo_root=repo.root,
        ref=ref,
        corpus_path=corpus_path,
        jobs=jobs,
        any_scope=any_scope,
        dask=dask,
        threads=threads,
    )
    return ev, metrics(ev, table, sessions_per_hour=sessions_per_hour)
