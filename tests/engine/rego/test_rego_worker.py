"""Rego evaluated in a killable worker process (the service's default isolation)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.core.decide import decide
from engine.core.models import Action, DecisionRequest
from engine.policy.loader import load_policy_folder
from tests.conftest import request_dict
from tests.engine.rego.conftest import POLICIES, REGO_ENGINES, write_policy
from tests.engine.service.test_eval_budget import ATTEMPTS, SLOW, SLOW_RULE


def _request(attempts: int = 1) -> DecisionRequest:
    raw = request_dict()
    raw["identity"]["failed_attempts"] = attempts
    return DecisionRequest.model_validate(raw)


@pytest.mark.parametrize("engine", REGO_ENGINES)
def test_isolated_evaluation_decides_like_the_in_process_one(engine: str) -> None:
    inproc = load_policy_folder(POLICIES / "support-password-reset-rego", rego_engine=engine)
    isolated = load_policy_folder(POLICIES / "support-password-reset-rego", rego_engine=engine)
    worker = isolated.evaluator.isolate(timeout_s=5.0, kill_after_s=10.0)
    try:
        assert worker.wait_ready(60)
        a, b = decide(_request(), inproc), decide(_request(), isolated)
        assert b.error is None
        assert (a.action, a.thresholds, a.reasons) == (b.action, b.thresholds, b.reasons)
    finally:
        worker.close()


@pytest.mark.parametrize("engine", REGO_ENGINES)
def test_runaway_evaluation_is_killed_and_the_worker_replaced(engine: str, tmp_path: Path) -> None:
    policy = load_policy_folder(write_policy(tmp_path, SLOW, SLOW_RULE), rego_engine=engine)
    worker = policy.evaluator.isolate(timeout_s=0.05, kill_after_s=0.2)
    try:
        assert worker.wait_ready(60)
        started = time.monotonic()
        slow = decide(_request(ATTEMPTS), policy)
        took = time.monotonic() - started
        assert slow.action == Action.review  # fail_mode
        assert slow.error and slow.error.startswith("policy_eval_timeout")
        assert took < 2.0  # killed at 0.2 s, not after the ~7 s of work
        assert worker.kills == 1
        assert worker.wait_ready(60)  # a fresh worker, compiled again
        assert decide(_request(1), policy).error is None
    finally:
        worker.close()


DIVIDES = (
    "package liveguard.probe\n\nimport rego.v1\n\n"
    "d := 1 / input.identity.failed_attempts\n\n"
    'decision := {"action": "warn", "reasons": [{"code": "x", "message": sprintf("%v", [d])}]}\n'
)


def test_regorus_worker_fails_safe_on_the_engine_path(tmp_path: Path) -> None:
    """A division by a request value keeps the policy on the Engine path; in the child a
    division by zero is still policy_eval_error, in the same status+text framing."""
    policy = load_policy_folder(write_policy(tmp_path, "probe", DIVIDES), rego_engine="regorus")
    assert policy.evaluator.path == "engine"
    worker = policy.evaluator.isolate(timeout_s=5.0, kill_after_s=10.0)
    try:
        assert worker.wait_ready(60)
        assert decide(_request(1), policy).action == Action.warn
        failed = decide(_request(0), policy)
        assert (failed.action, (failed.error or "").split(":")[0]) == (
            Action.review,
            "policy_eval_error",
        )
    finally:
        worker.close()


def test_print_in_a_regorus_worker_does_not_corrupt_its_answers(tmp_path: Path) -> None:
    body = DIVIDES.replace("d := 1 / input", 'd := 1 if print("x")\n\ne := 1 / input')
    policy = load_policy_folder(write_policy(tmp_path, "probe", body), rego_engine="regorus")
    worker = policy.evaluator.isolate(timeout_s=5.0, kill_after_s=10.0)
    try:
        assert worker.wait_ready(60)
        answers = [decide(_request(1), policy) for _ in range(3)]
        assert [(a.action, a.error) for a in answers] == [(Action.warn, None)] * 3
    finally:
        worker.close()
