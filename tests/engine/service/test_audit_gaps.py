"""Every read of stored personal data is audited, and a revoked key stops at once
(issue 10, point 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from engine.api import create_app
from engine.store.db import make_engine
from engine.store.tables import AuditReadRow
from tests.engine.service.conftest import (
    PID,
    ROOT,
    bearer,
    make_keys,
    make_settings,
    request_body,
    review_body,
)


def _trail(db_url: str) -> list[AuditReadRow]:
    engine = make_engine(db_url)
    with Session(engine) as s:
        rows = list(s.exec(select(AuditReadRow).order_by(AuditReadRow.id)).all())
    engine.dispose()
    return rows


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_claiming_a_review_item_is_an_audited_read(client: TestClient, keys, sqlite_url) -> None:
    d = client.post("/v1/decisions", json=review_body(), headers=bearer(keys["decide"])).json()
    item = client.get("/v1/reviews/next", headers=bearer(keys["review"])).json()
    [row] = _trail(sqlite_url)
    assert row.what == f"review:{item['id']}"
    assert row.decision_ids == [d["decision_id"]]
    assert row.role == "review"


def test_an_empty_review_queue_read_is_audited_too(client: TestClient, keys, sqlite_url) -> None:
    assert client.get("/v1/reviews/next", headers=bearer(keys["review"])).status_code == 204
    [row] = _trail(sqlite_url)
    assert row.what.startswith("review:next") and row.count == 0


def test_recording_an_outcome_is_an_audited_read(client: TestClient, keys, sqlite_url) -> None:
    client.post("/v1/decisions", json=review_body(), headers=bearer(keys["decide"]))
    rv = bearer(keys["review"])
    item = client.get("/v1/reviews/next", headers=rv).json()
    r = client.post(f"/v1/reviews/{item['id']}/outcome", json={"outcome": "legitimate"}, headers=rv)
    assert r.status_code == 200, r.text
    assert [t.what for t in _trail(sqlite_url)] == [
        f"review:{item['id']}",
        f"review:{item['id']}:outcome",
    ]


def test_reading_the_shadow_summary_is_audited(tmp_path: Path, sqlite_url, keys) -> None:
    app = create_app(make_settings(sqlite_url, shadow=f"{PID}@HEAD"), periodic_purge=False)
    with TestClient(app) as c:
        c.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"]))
        r = c.get(f"/v1/shadow/{PID}", headers=bearer(keys["audit"]))
    assert r.status_code == 200, r.text
    [row] = _trail(sqlite_url)
    assert row.what == f"shadow:{PID}" and row.role == "audit"


def test_a_revoked_key_is_refused_on_its_next_request(client: TestClient, sqlite_url) -> None:
    key = make_keys(sqlite_url, "decide")["decide"]
    key_id = key.split("_")[1]
    assert client.post("/v1/decisions", json=request_body(), headers=bearer(key)).status_code == 200
    out = _cli("keys", "revoke", key_id, "--database-url", sqlite_url)
    assert out.returncode == 0, out.stderr
    assert f"revoked key {key_id}" in out.stdout
    r = client.post("/v1/decisions", json=request_body(), headers=bearer(key))
    assert r.status_code == 401


def test_revoking_an_unknown_key_exits_2(sqlite_url) -> None:
    make_keys(sqlite_url, "decide")
    out = _cli("keys", "revoke", "0123456789ab", "--database-url", sqlite_url)
    assert out.returncode == 2
    assert "no key '0123456789ab'" in out.stderr


def test_a_revoked_key_is_not_listed(sqlite_url) -> None:
    key = make_keys(sqlite_url, "audit")["audit"]
    key_id = key.split("_")[1]
    _cli("keys", "revoke", key_id, "--database-url", sqlite_url)
    assert key_id not in _cli("keys", "list", "--database-url", sqlite_url).stdout


def _refusals(capsys) -> list[dict]:
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return [x for x in lines if x["event"] == "auth.refused"]


def test_401_is_logged_with_route_and_no_secret(sqlite_url, keys, capsys) -> None:
    forged = "lg_0123456789ab_" + "x" * 43
    app = create_app(make_settings(sqlite_url, log_level="INFO"), periodic_purge=False)
    with TestClient(app) as c:
        r = c.post("/v1/decisions", json=request_body(), headers=bearer(forged))
        assert r.status_code == 401
        assert c.get("/v1/reviews/next").status_code == 401
    first, second = _refusals(capsys)
    assert first["status"] == 401 and first["key_id"] == "0123456789ab"
    assert first["path"] == "/v1/decisions" and first["request_id"]
    assert second["key_id"] is None and second["path"] == "/v1/reviews/next"
    assert "x" * 43 not in json.dumps([first, second])


def test_403_is_logged_with_the_key_id_and_role(sqlite_url, keys, capsys) -> None:
    app = create_app(make_settings(sqlite_url, log_level="INFO"), periodic_purge=False)
    with TestClient(app) as c:
        assert c.get("/v1/reviews/next", headers=bearer(keys["decide"])).status_code == 403
        r = c.post("/v1/decisions", json=request_body(), headers=bearer(keys["review"]))
        assert r.status_code == 403
    route_refusal, front_door_refusal = _refusals(capsys)
    assert route_refusal["status"] == 403 and route_refusal["role"] == "decide"
    assert route_refusal["route"] == "/v1/reviews/next"
    assert route_refusal["key_id"] == keys["decide"].split("_")[1]
    assert front_door_refusal["role"] == "review"
    for key in keys.values():
        assert key not in json.dumps([route_refusal, front_door_refusal])


def test_a_revoked_key_stops_on_every_postgres_replica(pg_clean: str) -> None:
    """Two replicas on one PostgreSQL cache the keys they verified; a revocation through
    the store reaches both (LISTEN/NOTIFY) and their next requests are refused."""
    import asyncio
    import time

    from engine.service.runtime import Runtime
    from engine.store.db import make_engine
    from engine.store.keys import revoke_key
    from engine.telemetry import configure_logging

    # Runtime is used without an app here: point its log lines at this test's stdout (the
    # logger may still hold an earlier test's captured, now closed, stream).
    configure_logging("json", "WARNING")
    key = make_keys(pg_clean, "decide")["decide"]
    replicas = [Runtime(make_settings(pg_clean)) for _ in range(2)]
    for rt in replicas:
        rt.start()
    try:
        for rt in replicas:  # verified once: cached from here on
            assert asyncio.run(rt.authenticate(key)) is not None
            assert rt._pg_keys is not None and rt._pg_keys.get(key) is not None
        engine = make_engine(pg_clean)
        revoke_key(engine, key.split("_")[1])
        engine.dispose()
        deadline = time.monotonic() + 5.0
        refused = [False, False]
        while not all(refused) and time.monotonic() < deadline:
            refused = [asyncio.run(rt.authenticate(key)) is None for rt in replicas]
            time.sleep(0.01)
        assert refused == [True, True]
    finally:
        for rt in replicas:
            rt.stop()
