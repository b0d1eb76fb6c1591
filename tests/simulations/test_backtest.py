"""Backtest metrics count what they say, costs come from the policy, Rego runs in processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from engine import PolicyRepository, decide
from engine.cli.main import app
from simulations import SEVERITY
from simulations.backtest import backtest, evaluate, in_scope, metrics
from simulations.corpus import requests_from_corpus
from simulations.diff import diff_versions, sweep

from .conftest import POLICIES

COSTS = {
    "currency": "USD",
    "legitimate": {"log": 0, "warn": 1, "step_up": 5, "review": 25, "block": 200},
    "attack": {"log": 10000, "warn": 8000, "step_up": 500, "review": 100, "block": 0},
}


@pytest.fixture
def repo_with_costs(tmp_path: Path) -> Path:
    """A copy of the policies where support-password-reset declares the cost table above."""
    return _copy_with_costs(tmp_path, COSTS)


def _copy_with_costs(tmp_path: Path, costs: dict | None) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("_signoffs"))
    f = root / "support-password-reset" / "policy.yaml"
    spec = yaml.safe_load(f.read_text())
    spec.pop("costs", None)
    if costs is not None:
        spec["costs"] = costs
    f.write_text(yaml.safe_dump(spec))
    return root


def test_only_sessions_in_the_policy_scope_count(corpus):
    policy = PolicyRepository(POLICIES).get("support-password-reset")
    rows = in_scope(policy, corpus)
    kinds = set(np.array(corpus.column("session.kind").to_pylist(), dtype=object)[rows])
    assert kinds <= {"password_reset", "account_recovery"} and len(rows) > 0


def test_action_mix_counts_match_decide(corpus):
    policy = PolicyRepository(POLICIES).get("support-password-reset")
    ev = evaluate(policy, corpus, timing=False)
    m = metrics(ev, corpus)
    expected = np.zeros(5, dtype=int)
    for req in requests_from_corpus(corpus, ev.rows.tolist()):
        expected[SEVERITY[decide(req, policy).action]] += 1
    assert list(m["overall"]["actions"].values()) == expected.tolist()


def test_false_positive_rate_is_legitimate_sessions_stepped_up_or_harder(corpus):
    policy = PolicyRepository(POLICIES).get("payout-authorization")
    ev = evaluate(policy, corpus, timing=False)
    m = metrics(ev, corpus)
    legit = ~corpus.column("attack").to_numpy(zero_copy_only=False)[ev.rows]
    want = (ev.action[legit] >= SEVERITY["step_up"]).mean()
    assert m["overall"]["false_positive_rate"]["step_up_or_harder"] == pytest.approx(want)


def test_catch_rate_is_reported_per_attack_type(corpus):
    policy = PolicyRepository(POLICIES).get("support-password-reset")
    m = metrics(evaluate(policy, corpus, timing=False), corpus)
    assert set(m["overall"]["catch_rate"]) == {"voice_clone", "replay"}


def test_review_load_per_hour_scales_with_stated_traffic(corpus):
    policy = PolicyRepository(POLICIES).get("support-password-reset")
    ev = evaluate(policy, corpus, timing=False)
    low = metrics(ev, corpus, sessions_per_hour=1_000)["overall"]["review_queue"]["per_hour"]
    high = metrics(ev, corpus, sessions_per_hour=4_000)["overall"]["review_queue"]["per_hour"]
    assert high == pytest.approx(4 * low) and low > 0


def test_raw_media_escalations_match_decide_obligations(corpus):
    policy = PolicyRepository(POLICIES).get("payout-authorization")
    ev = evaluate(policy, corpus, timing=False)
    want = 0
    for req in requests_from_corpus(corpus, ev.rows.tolist()):
        obs = decide(req, policy).obligations
        want += any(getattr(o, "raw_media_allowed", False) for o in obs)
    assert int(ev.escalated.sum()) == want


def test_expected_cost_uses_the_policy_cost_table(corpus, repo_with_costs):
    repo = PolicyRepository(repo_with_costs)
    ev, m = backtest(repo, "support-password-reset", corpus)
    attack = corpus.column("attack").to_numpy(zero_copy_only=False)[ev.rows]
    names = ["log", "warn", "step_up", "review", "block"]
    want = sum(
        COSTS["attack" if a else "legitimate"][names[act]]
        for a, act in zip(attack, ev.action, strict=True)
    )
    assert m["overall"]["expected_cost"]["total"] == pytest.approx(want)


def test_policy_without_cost_table_says_so(corpus, tmp_path):
    repo = PolicyRepository(_copy_with_costs(tmp_path, None))
    _, m = backtest(repo, "support-password-reset", corpus)
    assert m["costs_declared"] is False and m["overall"]["expected_cost"] is None


def test_cost_table_missing_an_action_is_refused(repo_with_costs):
    f = repo_with_costs / "support-password-reset" / "policy.yaml"
    f.write_text(f.read_text().replace("    block: 0\n", ""))
    from engine.core.errors import PolicyInvalid

    with pytest.raises(PolicyInvalid) as exc:
        PolicyRepository(repo_with_costs).get("support-password-reset")
    assert any("costs.attack" in p and "block" in p for p in exc.value.problems)


def test_rego_in_worker_processes_matches_decide(corpus, corpus_file):
    repo = PolicyRepository(POLICIES)
    policy = repo.get("payout-authorization-rego")
    rows = np.arange(300)
    small = corpus.take(rows)
    path = corpus_file.parent / "small.parquet"
    import pyarrow.parquet as pq

    pq.write_table(small, path)
    ev = evaluate(
        policy,
        small,
        repo_root=POLICIES,
        ref="payout-authorization-rego",
        corpus_path=path,
        jobs=2,
        any_scope=True,
    )
    want = [SEVERITY[decide(r, policy).action] for r in requests_from_corpus(small)]
    assert ev.action.tolist() == want and ev.mode.startswith("processes")


def test_diff_counts_sessions_whose_action_changed(corpus):
    repo = PolicyRepository(POLICIES)
    new = evaluate(repo.get("payout-authorization"), corpus, timing=False, any_scope=True)
    old = evaluate(repo.get("support-password-reset"), corpus, timing=False, any_scope=True)
    d = diff_versions(new, old, corpus)
    assert d["changed"] == int((new.action != old.action).sum()) > 0
    assert sum(g["sessions"] for g in d["by_reason"]) == d["explained"]
    assert sum(sum(r.values()) for r in d["flow"].values()) == d["sessions"]


def test_sweep_lower_threshold_catches_no_fewer_attacks(corpus):
    policy = PolicyRepository(POLICIES).get("support-password-reset")
    result = sweep(policy, corpus, "thresholds.step_up", [0.15, 0.25, 0.35])
    catch = [p["catch_rate"] for p in result["points"] if "invalid" not in p]
    assert catch == sorted(catch, reverse=True) and len(catch) >= 2


def test_sweep_marks_out_of_order_thresholds_invalid(corpus):
    policy = PolicyRepository(POLICIES).get("support-password-reset")
    result = sweep(policy, corpus, "thresholds.warn", [0.99])
    assert "invalid" in result["points"][0]


def test_cli_run_against_prints_json_with_diff(corpus_file):
    out = CliRunner().invoke(
        app,
        [
            "simulate",
            "run",
            "--policy",
            "payout-authorization",
            "--against",
            "support-password-reset",
            "--any-scope",
            "--corpus",
            str(corpus_file),
            "--json",
            "--policies",
            str(POLICIES),
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["diff"]["changed"] > 0 and doc["run"]["policy"]["id"] == "payout-authorization"


def test_reading_only_the_policy_columns_gives_the_same_metrics(corpus_file):
    from simulations.backtest import policy_columns
    from simulations.corpus import read_corpus

    policy = PolicyRepository(POLICIES).get("payout-authorization")
    full, _ = read_corpus(corpus_file)
    pruned, _ = read_corpus(corpus_file, columns=policy_columns(policy))
    assert pruned.num_columns < full.num_columns
    a = metrics(evaluate(policy, full, timing=False), full)
    b = metrics(evaluate(policy, pruned, timing=False), pruned)
    assert a["overall"] == b["overall"] and a["scenarios"] == b["scenarios"]


def test_yaml_in_worker_processes_equals_the_local_run(tmp_path, catalog):
    from simulations.corpus import ROW_GROUP, generate_corpus, read_corpus, write_corpus

    path = tmp_path / "big.parquet"
    write_corpus(generate_corpus(catalog, ROW_GROUP + 5_000, seed=3), path)  # two row groups
    table, _ = read_corpus(path)
    policy = PolicyRepository(POLICIES).get("executive-meeting")
    local = evaluate(policy, table, timing=False)
    parallel = evaluate(
        policy,
        table,
        repo_root=POLICIES,
        ref="executive-meeting",
        corpus_path=path,
        jobs=2,
        timing=False,
    )
    assert parallel.mode.endswith("processes×2")
    assert np.array_equal(local.action, parallel.action)
    assert np.array_equal(local.escalated, parallel.escalated)


def test_dask_local_cluster_equals_the_local_run(corpus, corpus_file):
    distributed = pytest.importorskip("distributed")
    policy = PolicyRepository(POLICIES).get("payout-authorization")
    local = metrics(evaluate(policy, corpus, timing=False), corpus)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        ev = evaluate(
            policy,
            corpus,
            repo_root=POLICIES,
            ref="payout-authorization",
            corpus_path=corpus_file,
            dask=cluster.scheduler_address,
            timing=False,
        )
    on_dask = metrics(ev, corpus)
    assert ev.mode.startswith("vectorized on dask")
    assert on_dask["overall"] == local["overall"] and on_dask["scenarios"] == local["scenarios"]


@pytest.mark.parametrize("any_scope", [False, True])
def test_yaml_in_threads_equals_one_thread(corpus, monkeypatch, any_scope):
    import simulations.backtest as bt

    policy = PolicyRepository(POLICIES).get("support-password-reset")
    one = evaluate(policy, corpus, timing=False, any_scope=any_scope)
    monkeypatch.setattr(bt, "THREAD_SLICE", 1_000)  # six slices of the 6,000 sessions
    many = evaluate(policy, corpus, timing=False, any_scope=any_scope, threads=3)
    assert many.mode == "vectorized, threads×3" and one.mode == "vectorized"
    assert np.array_equal(one.rows, many.rows)
    assert any_scope or len(one.rows) < corpus.num_rows  # slices in and out of scope
    assert np.array_equal(one.action, many.action)
    assert np.array_equal(one.risk, many.risk)
    assert np.array_equal(one.escalated, many.escalated)
    assert metrics(one, corpus)["scenarios"] == metrics(many, corpus)["scenarios"]
