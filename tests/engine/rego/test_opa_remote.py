"""The remote OPA backend against a real HTTP server that evaluates with OPA's evaluator.

liveguard's own ``/v1/data`` endpoint answers a full Decision for a DecisionRequest, not the
raw policy document for ``input`` + ``input.fused``, so the OPA-compatible server here is a
small real one: OPA's Go evaluator behind ``http.server``, serving the policy's modules and
data as an OPA server loaded with the bundle would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.backends.opa.remote import FAILURES, RemoteOpaEvaluator
from engine.backends.rego.embedded import mount_data
from engine.core.decide import decide
from engine.core.models import Action, DecisionRequest
from engine.core.policy import Policy
from engine.policy.repository import PolicyRepository
from engine.settings import Settings
from tests.conftest import request_dict

POLICY = "support-password-reset-rego"


class _OpaServer:
    def __init__(self, policy: Policy, engine_cls: Any) -> None:
        compiled = policy.evaluator.compiled
        self.engine = engine_cls()
        for name, src in compiled.modules.items():
            self.engine.add_policy(name, src)
        self.engine.add_data(mount_data(compiled.package, compiled.data))
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body})
                if server.mode == "slow":
                    time.sleep(0.5)
                if server.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"code": "internal_error"}')
                    return
                path = self.path.removeprefix("/v1/data/").replace("/", ".")
                result = server.engine.eval_document(path, body["input"])
                payload = json.dumps({"result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # The client may have timed out first (the timeout test).
                with contextlib.suppress(BrokenPipeError):
                    self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def opa_server(repo: PolicyRepository, opa_engine_cls: Any) -> Iterator[_OpaServer]:
    server = _OpaServer(repo.get(POLICY), opa_engine_cls)
    yield server
    server.close()


def _remote(policy: Policy, url: str, timeout_ms: int = 2000) -> Policy:
    settings = Settings(opa_url=url, opa_timeout_ms=timeout_ms)
    remote = RemoteOpaEvaluator(
        policy.evaluator, settings, fail_mode=policy.manifest.fail_mode, policy_id=policy.id
    )
    return dataclasses.replace(policy, evaluator=remote)


def _request() -> DecisionRequest:
    return DecisionRequest.model_validate(
        request_dict(device={"posture": "unknown", "new_device": True, "geo_mismatch": False})
    )


def _failures(reason: str) -> float:
    return FAILURES.labels(POLICY, reason)._value.get()


def test_remote_opa_decides_like_the_embedded_engine(
    repo: PolicyRepository, opa_server: _OpaServer
) -> None:
    policy = repo.get(POLICY)
    remote = decide(_request(), _remote(policy, opa_server.url))
    local = decide(_request(), policy)
    assert remote.error is None
    assert (remote.action, remote.thresholds) == (local.action, local.thresholds)
    assert [r.code for r in remote.reasons] == [r.code for r in local.reasons]


def test_remote_query_uses_the_opa_data_api_path_and_input(
    repo: PolicyRepository, opa_server: _OpaServer
) -> None:
    decide(_request(), _remote(repo.get(POLICY), opa_server.url))
    sent = opa_server.requests[-1]
    assert sent["path"] == "/v1/data/liveguard/support_password_reset_rego/decision"
    assert "fused" in sent["body"]["input"]


def test_timeout_falls_back_to_fail_mode_and_is_counted(
    repo: PolicyRepository, opa_server: _OpaServer
) -> None:
    opa_server.mode = "slow"
    before = _failures("timeout")
    decision = decide(_request(), _remote(repo.get(POLICY), opa_server.url, timeout_ms=50))
    assert decision.action == Action.step_up  # the manifest's fail_mode
    assert "timeout" in (decision.error or "")
    assert _failures("timeout") == before + 1


def test_http_error_falls_back_to_fail_mode_and_is_counted(
    repo: PolicyRepository, opa_server: _OpaServer
) -> None:
    opa_server.mode = "error"
    before = _failures("http_500")
    decision = decide(_request(), _remote(repo.get(POLICY), opa_server.url))
    assert decision.error is not None and decision.action == Action.step_up
    assert _failures("http_500") == before + 1


def test_unreachable_opa_falls_back_to_fail_mode(repo: PolicyRepository) -> None:
    decision = decide(_request(), _remote(repo.get(POLICY), "http://127.0.0.1:9", 200))
    assert decision.action == Action.step_up
    assert "unavailable" in (decision.error or "")
