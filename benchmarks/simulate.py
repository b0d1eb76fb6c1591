"""Vectorized policy evaluation throughput (simulations / backtests).

Run by hand: ``.venv/bin/python benchmarks/simulate.py [--sessions N]``. Generates N
synthetic sessions as columns, evaluates every bundled YAML policy over them with numpy,
and compares with the serving path (``decide()`` per session) in the same process.
Target: ≥ 10,000,000 session decisions per minute.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import decide  # noqa: E402
from engine.conditions import ORDINALS  # noqa: E402
from engine.policy import PolicyRepository  # noqa: E402
from simulations import Batch, VectorizedPolicy  # noqa: E402
from simulations.generate import SIGNALS, random_requests  # noqa: E402


def synthetic_batch(n: int, rng: np.random.Generator) -> Batch:
    def pick(values, p=None):
        return rng.choice(np.array(values, dtype=object), size=n, p=p)

    context = {
        "session.channel": pick(["conference", "support_call"]),
        "session.kind": pick(
            [
                "team_meeting",
                "executive_meeting",
                "password_reset",
                "payout_authorization",
                "webinar",
            ]
        ),
        "session.participant": pick(["internal", "external"]),
        "session.consent.media_analysis": rng.random(n) < 0.9,
        "session.consent.raw_media_escalation": rng.random(n) < 0.5,
        "identity.assurance": rng.integers(0, len(ORDINALS["identity.assurance"]), n),
        "identity.method": pick(["sso", "knowledge_based", "voice_plus_otp"]),
        "identity.seconds_since_auth": rng.integers(0, 4000, n).astype(float),
        "identity.failed_attempts": rng.poisson(0.4, n).astype(float),
        "transaction.kind": pick(["payout", "wire_transfer", "password_reset"]),
        "transaction.value": np.round(rng.lognormal(8, 2, n), 2),
        "transaction.currency": pick(["USD", "EUR"]),
        "device.posture": rng.integers(0, len(ORDINALS["device.posture"]), n),
        "device.new_device": rng.random(n) < 0.2,
        "device.geo_mismatch": rng.random(n) < 0.1,
    }
    attack = rng.random(n) < 0.05
    scores, confs = {}, {}
    for name in SIGNALS:
        genuine = rng.beta(1.2, 8, n)
        fake = rng.beta(8, 1.5, n)
        s = np.where(attack, fake, genuine)
        s[rng.random(n) < 0.15] = np.nan  # missing windows
        scores[name] = s
        confs[name] = rng.uniform(0.2, 1.0, n)
    return Batch(size=n, context=context, scores=scores, confidences=confs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-sessions", type=int, default=20_000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    batch = synthetic_batch(args.sessions, rng)
    repo = PolicyRepository(ROOT / "policies")
    policies = [p for p in repo.all() if p.spec is not None]
    vec_rates, serve_rates = [], []
    print(
        f"{'policy':<26}{'vectorized s':>14}{'sessions/min':>16}{'decide() /min':>16}{'speed-up':>10}"
    )
    for policy in policies:
        vp = VectorizedPolicy(policy)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = vp.evaluate(batch)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        rate = args.sessions / t * 60
        vec_rates.append(rate)
        # Baseline: the serving path over real DecisionRequests in the same process.
        reqs = random_requests(args.baseline_sessions, seed=1)
        t0 = time.perf_counter()
        for q in reqs:
            decide(q, policy)
        serve = args.baseline_sessions / (time.perf_counter() - t0) * 60
        serve_rates.append(serve)
        mix = np.bincount(result.action, minlength=5) / args.sessions
        print(
            f"{policy.id:<26}{t:>14.3f}{rate:>16,.0f}{serve:>16,.0f}{rate / serve:>9.0f}×   "
            f"mix log/warn/step_up/review/block = {' '.join(f'{m:.3f}' for m in mix)}"
        )
    worst = min(vec_rates)
    print(f"\nslowest policy: {worst:,.0f} session decisions/min (target ≥ 10,000,000)")
    print(
        f"RESULT sessions_per_min={worst:.0f} median_sessions_per_min={statistics.median(vec_rates):.0f} "
        f"speedup_vs_decide={statistics.median([v / s for v, s in zip(vec_rates, serve_rates, strict=True)]):.0f}"
    )


if __name__ == "__main__":
    main()
