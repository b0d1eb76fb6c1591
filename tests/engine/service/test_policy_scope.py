"""A caller cannot pick a more lenient policy than the one that covers its session
(issue 10, point 5): a named policy must cover the session's channel and kind."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.engine.service.conftest import bearer, request_body

LOCKOUT = {"assurance": "low", "method": "knowledge_based", "failed_attempts": 9}


def test_own_policy_blocks_a_lockout_pattern(client: TestClient, keys) -> None:
    body = request_body(policy=None, identity=LOCKOUT)
    r = client.post("/v1/decisions", json=body, headers=bearer(keys["decide"]))
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "block"


def test_naming_a_policy_outside_the_session_scope_is_refused(client: TestClient, keys) -> None:
    body = request_body(policy="conference-default", identity=LOCKOUT)
    r = client.post("/v1/decisions", json=body, headers=bearer(keys["decide"]))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "policy_not_applicable"
    assert "conference-default" in r.json()["message"]
    assert "password_reset" in r.json()["message"]


def test_opa_path_of_a_policy_outside_the_session_scope_is_refused(
    client: TestClient, keys
) -> None:
    body = {"input": request_body(policy=None, identity=LOCKOUT)}
    r = client.post(
        "/v1/data/liveguard/conference_default/decision", json=body, headers=bearer(keys["decide"])
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "policy_not_applicable"


def test_no_role_may_override_the_scope(client: TestClient, keys) -> None:
    body = request_body(policy="conference-default", identity=LOCKOUT)
    r = client.post("/v1/decisions", json=body, headers=bearer(keys["admin"]))
    assert r.status_code == 422, r.text


def test_a_refused_scope_override_stores_nothing(client: TestClient, keys, sqlite_url) -> None:
    from sqlmodel import Session, select

    from engine.store.db import make_engine
    from engine.store.tables import DecisionEventRow

    body = request_body(policy="conference-default", identity=LOCKOUT)
    client.post("/v1/decisions", json=body, headers=bearer(keys["decide"]))
    engine = make_engine(sqlite_url)
    with Session(engine) as s:
        assert list(s.exec(select(DecisionEventRow)).all()) == []
    engine.dispose()
