"""Real ``liveguard serve`` processes on 127.0.0.1: OPA clients, keys, and crash safety."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from opa_client import OpaClient
from sqlmodel import Session, select

from engine.store.db import make_engine
from engine.store.tables import DecisionEventRow
from tests.engine.service.conftest import ROOT, bearer, make_keys, request_body


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_keys_create_prints_the_key_last(sqlite_url: str) -> None:
    out = _cli("keys", "create", "--role", "review", "--database-url", sqlite_url)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("lg_") and len(key) > 40
    listed = _cli("keys", "list", "--database-url", sqlite_url)
    assert "review" in listed.stdout and key not in listed.stdout
    # Only the hash is stored.
    assert key.encode() not in Path(sqlite_url.removeprefix("sqlite:///")).read_bytes()
    bad = _cli("keys", "create", "--role", "root", "--database-url", sqlite_url)
    assert bad.returncode == 2 and "--role" in bad.stderr


def test_serve_refuses_without_keys(sqlite_url: str) -> None:
    out = _cli("serve", "--port", "1", "--database-url", sqlite_url)
    assert out.returncode == 2
    assert "no API keys" in out.stderr and "--insecure-dev" in out.stderr


def test_insecure_dev_serves_without_keys(sqlite_url: str, serve) -> None:
    srv = serve(sqlite_url, "--insecure-dev")
    r = httpx.post(f"{srv.url}/v1/decisions", json=request_body())
    assert r.status_code == 200


def test_opa_python_client_queries_the_service(sqlite_url: str, serve, tmp_path: Path) -> None:
    keys = make_keys(sqlite_url, "decide", "audit")
    srv = serve(sqlite_url)
    client = OpaClient(host="127.0.0.1", port=srv.port, token=keys["decide"])
    try:
        assert client.check_health() is True
        res = client.query_rule(
            input_data=request_body(policy=None),
            package_path="liveguard.support_password_reset",
            rule_name="decision",
        )
    finally:
        client.close_connection()
    assert res["result"]["action"] == "step_up"
    assert res["result"]["policy"]["id"] == "support-password-reset"
    assert res["decision_id"] == res["result"]["decision_id"]
    # The OPA answer was logged like any decision, and an auditor can read it.
    r = httpx.get(f"{srv.url}/v1/decisions/{res['decision_id']}", headers=bearer(keys["audit"]))
    assert r.status_code == 200 and r.json()["result"]["action"] == "step_up"
    # Without a key OPA clients see a 401.
    anon = OpaClient(host="127.0.0.1", port=srv.port)
    try:
        with pytest.raises(Exception, match="401"):
            anon.query_rule(request_body(), "liveguard.support_password_reset", "decision")
    finally:
        anon.close_connection()
    # Secrets never reach the log.
    log = (tmp_path / "server-0.log").read_text()
    assert keys["decide"] not in log and keys["decide"][16:] not in log
    assert '"request_id"' in log and '"decision_id"' in log


def test_opa_package_and_policy_must_agree(sqlite_url: str, serve) -> None:
    keys = make_keys(sqlite_url, "decide")
    srv = serve(sqlite_url)
    url = f"{srv.url}/v1/data/liveguard/support_password_reset/decision"
    body = {"input": request_body(policy="payout-authorization")}
    r = httpx.post(url, json=body, headers=bearer(keys["decide"]))
    assert r.status_code == 422 and r.json()["code"] == "request_invalid"
    r = httpx.post(
        f"{srv.url}/v1/data/liveguard/no_such_policy/decision",
        json={"input": request_body(policy=None)},
        headers=bearer(keys["decide"]),
    )
    assert r.status_code == 404 and r.json()["code"] == "policy_not_found"


@pytest.mark.parametrize("writer", ["thread", "process"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_no_acknowledged_decision(
    backend: str, writer: str, sqlite_url: str, request: pytest.FixtureRequest, serve
) -> None:
    """Hammer, kill -9 mid-load, restart: every decision id a client got is stored."""
    db = sqlite_url if backend == "sqlite" else request.getfixturevalue("pg_clean")
    keys = make_keys(db, "decide", "audit")
    srv = serve(db, env={"LIVEGUARD_WRITER": writer})
    acknowledged: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def hammer(worker: int) -> None:
        with httpx.Client(headers=bearer(keys["decide"]), timeout=5) as c:
            i = 0
            while not stop.is_set():
                i += 1
                body = request_body(session={"id": f"w{worker}-{i}"})
                try:
                    r = c.post(f"{srv.url}/v1/decisions", json=body)
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    continue
                if r.status_code == 200:
                    acknowledged.append(r.json()["decision_id"])

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.kill9()  # mid-load: requests are in flight right now
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) >= 300
    assert errors, "the kill should have cut some requests off mid-flight"
    # Restart on the same store and check through the audit API, then the table.
    srv2 = serve(db)
    missing = [
        d
        for d in acknowledged[-50:]
        if httpx.get(f"{srv2.url}/v1/decisions/{d}", headers=bearer(keys["audit"])).status_code
        != 200
    ]
    assert missing == []
    engine = make_engine(db)
    with Session(engine) as s:
        stored = set(s.exec(select(DecisionEventRow.decision_id)).all())
    engine.dispose()
    lost = set(acknowledged) - stored
    assert not lost, f"{len(lost)} acknowledged decisions were lost"
