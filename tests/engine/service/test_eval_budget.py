"""Policies load at startup and evaluate within a budget (issue 10, point 4).

The attack: a Rego rule whose cost the caller controls (two nested ``numbers.range`` sized by
``input.identity.failed_attempts``). rego-cpp cannot be interrupted, so the service must
evaluate it off its event loop and answer the caller with the policy's fail_mode once the
budget has passed, while /health and other policies keep answering.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from tests.engine.bounds import alias_bomb_policy
from tests.engine.rego.conftest import write_policy
from tests.engine.service.conftest import (
    PID,
    POLICIES,
    bearer,
    make_keys,
    make_settings,
    request_body,
)

SLOW = "slow-rego"
#: Seconds of rego-cpp work the slow request asks for (measured: 1,800² pairs ≈ 7 s here).
ATTEMPTS = 60
SLOW_RULE = """package liveguard.slow_rego

import rego.v1

n := input.identity.failed_attempts * 30

pairs := count([1 | some i in numbers.range(1, n); some j in numbers.range(1, n)])

decision := {"action": "log", "reasons": [{"code": "x", "message": sprintf("%d", [pairs])}]}
"""
#: What "promptly" means here: far below the seconds the slow evaluation takes, far above
#: what a loaded machine needs for one small request.
PROMPT_S = 2.0


def _policies(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES / PID, root / PID)
    write_policy(root, SLOW, SLOW_RULE)
    return root


def _slow_body(attempts: int = ATTEMPTS) -> dict[str, Any]:
    return request_body(
        policy=SLOW,
        session={"id": "call-slow", "kind": "test_only"},
        identity={"failed_attempts": attempts},
    )


def _server(
    serve: Any, sqlite_url: str, root: Path, isolation: str = "process"
) -> tuple[Any, dict[str, str]]:
    keys = make_keys(sqlite_url, "decide")
    env = {
        "LIVEGUARD_POLICIES": str(root),
        "LIVEGUARD_REGO_ISOLATION": isolation,
        # Policies written for the test carry no board sign-off: the logged override.
        "LIVEGUARD_ALLOW_UNSIGNED": "true",
    }
    if isolation == "thread":
        # A worker thread keeps the loop free only with an engine that releases the GIL
        # while it evaluates: regopy does (ctypes), regorus does not (measured).
        env["LIVEGUARD_REGO_ENGINE"] = "regopy"
    srv = serve(sqlite_url, env=env)
    return srv, bearer(keys["decide"])


def _post(url: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    r = httpx.post(f"{url}/v1/decisions", json=body, headers=headers, timeout=30)
    return time.monotonic() - started, r


def test_slow_rego_evaluation_answers_fail_mode_with_policy_eval_timeout(
    serve, sqlite_url: str, tmp_path: Path
) -> None:
    srv, h = _server(serve, sqlite_url, _policies(tmp_path))
    took, r = _post(srv.url, h, _slow_body())
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["action"] == "review"  # the slow policy's fail_mode
    assert d["error"].startswith("policy_eval_timeout")
    assert d["reasons"][0]["code"] == "policy_eval_timeout"
    assert took < PROMPT_S  # the budget (5 ms + 20 ms wait slack), not the ~7 s of work


def test_slow_rego_evaluation_answers_fail_mode_in_a_worker_thread_too(
    serve, sqlite_url: str, tmp_path: Path
) -> None:
    srv, h = _server(serve, sqlite_url, _policies(tmp_path), "thread")
    took, r = _post(srv.url, h, _slow_body())
    assert r.json()["error"].startswith("policy_eval_timeout")
    assert took < PROMPT_S


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_slow_rego_evaluation_does_not_delay_health_or_other_policies(
    serve, sqlite_url: str, tmp_path: Path, isolation: str
) -> None:
    srv, h = _server(serve, sqlite_url, _policies(tmp_path), isolation)
    with ThreadPoolExecutor(3) as pool:
        slow = pool.submit(_post, srv.url, h, _slow_body())
        time.sleep(0.2)  # the slow evaluation is running now
        started = time.monotonic()
        health = httpx.get(f"{srv.url}/health", timeout=60)
        health_took = time.monotonic() - started
        other_took, other = _post(srv.url, h, request_body())
        slow.result()
    assert health.status_code == 200
    assert health_took < PROMPT_S
    assert other.status_code == 200 and other.json()["error"] is None
    assert other_took < PROMPT_S


def test_request_queued_behind_a_slow_evaluation_times_out_too(
    serve, sqlite_url: str, tmp_path: Path
) -> None:
    srv, h = _server(serve, sqlite_url, _policies(tmp_path))
    with ThreadPoolExecutor(1) as pool:
        # The slow evaluation keeps the policy's worker busy; the cheap request is sent
        # while it runs (not after it was answered: by then a fresh worker may be ready).
        slow = pool.submit(_post, srv.url, h, _slow_body())
        time.sleep(0.03)
        took, r = _post(srv.url, h, _slow_body(attempts=1))  # cheap, but queued behind it
        slow.result()
    assert r.json()["error"].startswith("policy_eval_timeout")
    assert took < PROMPT_S


def test_yaml_policy_over_its_declared_budget_gets_fail_mode(tmp_path: Path, sqlite_url) -> None:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES / PID, root / PID)
    manifest = root / PID / "manifest.yaml"
    # No YAML evaluation takes less than a nanosecond.
    manifest.write_text(manifest.read_text() + "eval_budget_ms: 0.000001\n")
    keys = make_keys(sqlite_url, "decide")
    app = create_app(make_settings(sqlite_url, policies=root), periodic_purge=False)
    with TestClient(app) as c:
        d = c.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"])).json()
    assert d["action"] == "step_up"  # the manifest's fail_mode
    assert d["error"].startswith("policy_eval_timeout")


def test_policies_are_loaded_at_startup_not_on_the_first_decision(
    tmp_path: Path, sqlite_url
) -> None:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES / PID, root / PID)
    keys = make_keys(sqlite_url, "decide")
    app = create_app(make_settings(sqlite_url, policies=root), periodic_purge=False)
    with TestClient(app) as c:
        (root / PID / "policy.yaml").unlink()  # a lazy first load would now fail
        d = c.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"])).json()
    assert d["error"] is None


def test_serve_with_an_alias_bomb_policy_starts_and_fails_safe(
    serve, sqlite_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "policies"
    alias_bomb_policy(root / PID)
    srv, h = _server(serve, sqlite_url, root)
    took, r = _post(srv.url, h, request_body())
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "step_up"  # the manifest's fail_mode
    assert r.json()["error"].startswith("policy_invalid")
    assert took < PROMPT_S
