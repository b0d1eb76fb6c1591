"""Property-based API testing from the OpenAPI schema (schemathesis), against a real
server: whatever the input, the service never answers 500.

Driven with hypothesis directly rather than schemathesis's pytest plugin (which does not
work with the pytest here); examples per operation are capped to keep the suite fast.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from tests.engine.service.conftest import Server, bearer, make_keys

EXAMPLES_PER_OPERATION = 25


def test_api_never_answers_500(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'liveguard.db'}"
    auth = bearer(make_keys(db, "admin")["admin"])
    srv = Server(db, tmp_path / "server.log", env={"LIVEGUARD_LOG_LEVEL": "WARNING"}).start()
    try:
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 11
        for operation in operations:
            calls = 0

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def check(case) -> None:  # type: ignore[no-untyped-def]
                nonlocal calls
                calls += 1
                case.call_and_validate(headers=auth, checks=[not_a_server_error])

            check()
            assert calls > 0, operation.label
    finally:
        srv.stop()
