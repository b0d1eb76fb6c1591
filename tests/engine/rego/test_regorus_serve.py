"""regorus in ``liveguard serve``: concurrent decisions through a real service.

regorus's objects panic when used from a thread other than their maker's, and the
service loads policies in one thread and evaluates Rego in another (a worker process by
default, a lane thread with ``rego_isolation=thread``). Every concurrent decision must be
the one the in-process evaluator gives, without a single ``policy_eval_error``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from engine.core.decide import decide
from engine.core.models import DecisionRequest
from tests.engine.rego import requests as gen
from tests.engine.rego.conftest import rego_policy
from tests.engine.service.conftest import (  # noqa: F401 (fixtures)
    bearer,
    make_keys,
    serve,
    sqlite_url,
)

PID = "support-password-reset-rego"
N = 48


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_concurrent_regorus_decisions_through_the_service_match_in_process(
    serve: Any,  # noqa: F811
    sqlite_url: str,  # noqa: F811
    isolation: str,
) -> None:
    keys = make_keys(sqlite_url, "decide")
    srv = serve(
        sqlite_url,
        env={
            "LIVEGUARD_REGO_ENGINE": "regorus",
            "LIVEGUARD_REGO_ISOLATION": isolation,
            # A shared, loaded machine: the budget is not what this test is about.
            "LIVEGUARD_EVAL_BUDGET_MS": "200",
        },
    )
    raws = list(gen.bulk(N, seed=5, kind="password_reset"))
    for raw in raws:  # the twin's scope (the YAML original owns password_reset)
        raw["session"]["kind"] = "password_reset_rego"
    policy = rego_policy(PID, "regorus")
    expected = [decide(DecisionRequest.model_validate(r), policy) for r in raws]

    def post(raw: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(
            f"{srv.url}/v1/decisions",
            json={**raw, "policy": PID},
            headers=bearer(keys["decide"]),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(post, raws))
    assert [g["error"] for g in got] == [None] * N
    assert [(g["action"], g["thresholds"]) for g in got] == [
        (e.action.value, {k.value: v for k, v in e.thresholds.items()}) for e in expected
    ]
