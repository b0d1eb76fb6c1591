"""The HTTP API in process (ASGI), on the embedded SQLite store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from engine.api import create_app
from engine.store.db import make_engine
from engine.store.tables import AuditReadRow, DecisionEventRow, ReviewItemRow
from tests.engine.service.conftest import (
    LIVE_VERSION,
    POLICIES,
    bearer,
    make_keys,
    make_settings,
    request_body,
    review_body,
)


def _rows(db_url: str, model: type) -> list:
    engine = make_engine(db_url)
    with Session(engine) as s:
        rows = list(s.exec(select(model)).all())
    engine.dispose()
    return rows


def test_decision_is_answered_and_logged(client: TestClient, keys, sqlite_url) -> None:
    r = client.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"]))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["action"] == "step_up"
    assert d["policy"]["id"] == "support-password-reset"
    assert d["policy"]["digest"].startswith("sha256:")
    assert r.headers["x-request-id"]
    [row] = _rows(sqlite_url, DecisionEventRow)
    assert row.decision_id == d["decision_id"]
    assert row.action == "step_up"
    assert row.request_id == r.headers["x-request-id"]
    assert row.result["summary"] == d["summary"]


def test_policy_chosen_by_applies_to(client: TestClient, keys) -> None:
    r = client.post("/v1/decisions", json=request_body(policy=None), headers=bearer(keys["decide"]))
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["id"] == "support-password-reset"
    body = request_body(policy=None, session={"channel": "support_call", "kind": "no_such_flow"})
    r = client.post("/v1/decisions", json=body, headers=bearer(keys["decide"]))
    assert r.status_code == 404
    assert r.json()["code"] == "policy_not_found"


def test_log_keeps_only_retained_fields(client: TestClient, keys, sqlite_url) -> None:
    """identity.method and transaction.* are not declared for retention: never stored."""
    body = request_body(
        signals=[
            *request_body()["signals"],
            {"name": "video.face_swap", "modality": "video", "score": 0.9, "confidence": 0.9,
             "detector": "face_swap@2.0.0"},
        ]
    )  # fmt: skip
    r = client.post("/v1/decisions", json=body, headers=bearer(keys["decide"]))
    assert r.status_code == 200
    [row] = _rows(sqlite_url, DecisionEventRow)
    assert "transaction" not in row.input
    assert "method" not in row.input["identity"]
    assert row.input["device"]["posture"] == "unknown"
    assert row.input["session"]["id"] == "call-7f3a"
    # Signals: the declared one with its detector version; the undeclared one is not kept.
    assert [(s["name"], s["detector"], s["detector_version"]) for s in row.signals] == [
        ("audio.synthetic_voice", "synthetic_voice", "1.0.0")
    ]
    assert "face_swap" not in json.dumps(row.input) + json.dumps(row.signals)
    assert row.retention["device.posture"] == 90
    assert row.retention["identity.assurance"] == 180
    assert (row.expires_at - row.decided_at).days == 180


def test_validation_error_names_the_field(client: TestClient, keys) -> None:
    body = request_body(identity={"assurance": "very_high"})
    r = client.post("/v1/decisions", json=body, headers=bearer(keys["decide"]))
    assert r.status_code == 422
    err = r.json()
    assert err["code"] == "request_invalid"
    assert err["message"].startswith("identity.assurance:")
    assert err["errors"][0]["field"] == "identity.assurance"
    r = client.post(
        "/v1/decisions", json={**request_body(), "extra": 1}, headers=bearer(keys["decide"])
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "extra"
    r = client.post(
        "/v1/decisions",
        content=b"{not json",
        headers={**bearer(keys["decide"]), "content-type": "application/json"},
    )
    assert r.status_code == 422


def test_body_size_limit(sqlite_url, keys) -> None:
    app = create_app(make_settings(sqlite_url, max_body_bytes=4096), periodic_purge=False)
    with TestClient(app) as c:
        big = request_body(session={"id": "x" * 100})
        big["signals"] = [big["signals"][0]] * 60
        r = c.post("/v1/decisions", json=big, headers=bearer(keys["decide"]))
        assert r.status_code == 413
        assert r.json()["code"] == "body_too_large"

        def chunks():  # no Content-Length: the limit still holds
            for _ in range(10):
                yield b" " * 1000

        r = c.post(
            "/v1/decisions",
            content=chunks(),
            headers={**bearer(keys["decide"]), "content-type": "application/json"},
        )
        assert r.status_code == 413
        r = c.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"]))
        assert r.status_code == 200


def test_auth_401_and_403(client: TestClient, keys) -> None:
    body = request_body()
    assert client.post("/v1/decisions", json=body).status_code == 401
    r = client.post("/v1/decisions", json=body, headers=bearer("lg_000000000000_" + "A" * 43))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/decisions", json=body, headers=bearer("nonsense")).status_code == 401
    wrong = keys["decide"][:-1] + ("B" if keys["decide"][-1] != "B" else "C")
    assert client.post("/v1/decisions", json=body, headers=bearer(wrong)).status_code == 401
    for role in ("review", "audit"):
        r = client.post("/v1/decisions", json=body, headers=bearer(keys[role]))
        assert r.status_code == 403, role
        assert r.json()["code"] == "forbidden"
    assert client.post("/v1/decisions", json=body, headers=bearer(keys["admin"])).status_code == 200
    assert client.get("/v1/reviews/next", headers=bearer(keys["decide"])).status_code == 403
    assert client.get("/v1/decisions/abc", headers=bearer(keys["review"])).status_code == 403
    assert client.get("/v1/shadow/x", headers=bearer(keys["decide"])).status_code == 403


def test_audit_reads_are_logged(client: TestClient, keys, sqlite_url) -> None:
    d = client.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"])).json()
    r = client.get(f"/v1/decisions/{d['decision_id']}", headers=bearer(keys["audit"]))
    assert r.status_code == 200
    event = r.json()
    assert event["kind"] == "DecisionEventV1"
    assert event["result"]["action"] == d["action"]
    assert event["signals"][0]["detector_version"] == "1.0.0"
    assert event["timings"]["decide_us"] >= 0
    r = client.get(
        "/v1/decisions", params={"since": "2000-01-01T00:00:00Z"}, headers=bearer(keys["audit"])
    )
    assert [e["decision_id"] for e in r.json()["events"]] == [d["decision_id"]]
    assert client.get("/v1/decisions/" + "f" * 32, headers=bearer(keys["audit"])).status_code == 404
    trail = _rows(sqlite_url, AuditReadRow)
    assert len(trail) == 3
    assert trail[0].what == f"decision:{d['decision_id']}"
    assert trail[0].decision_ids == [d["decision_id"]]
    assert trail[0].role == "audit"
    assert trail[1].count == 1
    assert trail[2].count == 0


def test_event_paging(client: TestClient, keys) -> None:
    ids = {
        client.post(
            "/v1/decisions",
            json=request_body(session={"id": f"s{i}"}),
            headers=bearer(keys["decide"]),
        ).json()["decision_id"]
        for i in range(5)
    }
    seen: list[str] = []
    query = "since=2000-01-01T00:00:00Z&limit=2"
    while query:
        page = client.get(f"/v1/decisions?{query}", headers=bearer(keys["audit"])).json()
        seen += [e["decision_id"] for e in page["events"]]
        query = page["next"]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(ids)


def test_broken_policy_fails_safe_and_is_logged(tmp_path: Path, sqlite_url, keys) -> None:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES / "support-password-reset", root / "support-password-reset")
    (root / "support-password-reset" / "policy.yaml").write_text("fusion: [not, a, mapping\n")
    app = create_app(make_settings(sqlite_url, policies=root), periodic_purge=False)
    with TestClient(app) as c:
        r = c.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"]))
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["action"] == "step_up"  # the manifest's fail_mode
        assert d["error"].startswith("policy_invalid")
        metrics = c.get("/metrics").text
        assert (
            'liveguard_fail_mode_fallbacks_total{action="step_up",policy="support-password-reset"} 1.0'
            in metrics
        )
        assert "liveguard_policy_errors_total" in metrics
    [row] = _rows(sqlite_url, DecisionEventRow)
    assert row.decision_id == d["decision_id"]
    assert row.error.startswith("policy_invalid")
    assert row.input == {"session": {"id": "call-7f3a"}, "policy": "support-password-reset"}


def test_review_flow_and_overturn_rate(client: TestClient, keys, sqlite_url) -> None:
    h = bearer(keys["decide"])
    decided = [
        client.post("/v1/decisions", json=review_body(f"r{i}"), headers=h).json() for i in range(3)
    ]
    assert {d["action"] for d in decided} == {"review"}
    rv = bearer(keys["review"])
    items = []
    for _ in range(3):
        r = client.get("/v1/reviews/next", headers=rv)
        assert r.status_code == 200, r.text
        items.append(r.json())
    assert client.get("/v1/reviews/next", headers=rv).status_code == 204
    item = items[0]
    assert item["status"] == "claimed"
    assert item["queue"] == "fraud-review"
    cl = item["checklist"]
    assert "The caller's device is reported compromised." in cl["what_tripped"]
    assert cl["confidence"]["risk"] == decided[0]["risk"]
    assert cl["context"]["device"]["posture"] == "compromised"
    assert "transaction" not in cl["context"]  # only what the log may retain
    assert cl["recommended_next_step"] == decided[0]["summary"]
    assert cl["steps"][0].startswith("Listen for robotic prosody")
    # Outcomes: one confirmed, two overturned.
    for it, outcome in zip(items, ["confirmed_attack", "legitimate", "legitimate"], strict=True):
        r = client.post(
            f"/v1/reviews/{it['id']}/outcome", json={"outcome": outcome, "note": "ok"}, headers=rv
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "resolved"
    again = client.post(
        f"/v1/reviews/{items[0]['id']}/outcome", json={"outcome": "legitimate"}, headers=rv
    )
    assert again.status_code == 409
    assert (
        client.post(
            "/v1/reviews/" + "0" * 24 + "/outcome", json={"outcome": "legitimate"}, headers=rv
        ).status_code
        == 404
    )
    bad = client.post(
        f"/v1/reviews/{items[0]['id']}/outcome", json={"outcome": "maybe"}, headers=rv
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "outcome"
    stats = client.get("/v1/reviews/stats", headers=bearer(keys["audit"])).json()["versions"]
    assert stats == [
        {"policy": "support-password-reset", "version": LIVE_VERSION, "opened": 3, "pending": 0,
         "resolved": 3, "confirmed_attack": 1, "legitimate": 2, "inconclusive": 0,
         "overturn_rate": 0.6667}
    ]  # fmt: skip
    m = client.get("/metrics").text
    assert (
        f'liveguard_reviews_total{{event="opened",policy="support-password-reset",version="{LIVE_VERSION}"}} 3.0'
        in m
    )
    assert (
        f'liveguard_reviews_total{{event="overturned",policy="support-password-reset",version="{LIVE_VERSION}"}} 2.0'
        in m
    )
    assert (
        f'liveguard_reviews_total{{event="confirmed",policy="support-password-reset",version="{LIVE_VERSION}"}} 1.0'
        in m
    )


def test_claim_belongs_to_its_reviewer(sqlite_url) -> None:
    keys = make_keys(sqlite_url, "decide", "review", "review")
    other = make_keys(sqlite_url, "review")["review"]
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        c.post("/v1/decisions", json=review_body(), headers=bearer(keys["decide"]))
        item = c.get("/v1/reviews/next", headers=bearer(keys["review"])).json()
        r = c.post(
            f"/v1/reviews/{item['id']}/outcome",
            json={"outcome": "legitimate"},
            headers=bearer(other),
        )
        assert r.status_code == 409
    [row] = _rows(sqlite_url, ReviewItemRow)
    assert row.status == "claimed"


def test_policies_endpoints(client: TestClient, keys) -> None:
    r = client.get("/v1/policies", headers=bearer(keys["review"]))
    assert r.status_code == 200
    [p] = [p for p in r.json()["policies"] if p["id"] == "support-password-reset"]
    assert p["package"] == "liveguard.support_password_reset"
    assert p["loads"] and p["digest"].startswith("sha256:")
    r = client.get("/v1/policies/support-password-reset", headers=bearer(keys["decide"]))
    d = r.json()
    assert d["manifest"]["fail_mode"] == "step_up"
    assert d["privacy"]["pattern"] == "hybrid"
    assert d["privacy"]["retention_days"]["raw_audio"] == 0
    assert d["privacy"]["legal_basis"]
    assert client.get("/v1/policies/nope", headers=bearer(keys["decide"])).status_code == 404
    assert client.get("/v1/policies").status_code == 401


def test_metrics_cover_health_and_outcomes(client: TestClient, keys) -> None:
    h = bearer(keys["decide"])
    strong = request_body(
        signals=[{**request_body()["signals"][0], "score": 0.9}],
        session={"consent": {"media_analysis": True, "raw_media_escalation": True}},
    )
    client.post("/v1/decisions", json=strong, headers=h)
    client.post("/v1/decisions", json=request_body(signals=[]), headers=h)
    no_consent = request_body(
        session={"consent": {"media_analysis": False, "raw_media_escalation": False}}
    )
    client.post("/v1/decisions", json=no_consent, headers=h)
    m = client.get("/metrics").text
    for name in (
        "liveguard_decision_latency_seconds_bucket",
        "liveguard_policy_errors",
        "liveguard_fail_mode_fallbacks",
        'liveguard_signal_confidence_bucket{detector="synthetic_voice"',
        'liveguard_signals_missing_total{policy="support-password-reset",signal="audio.replay"}',
        'liveguard_signals_dropped_total{policy="support-password-reset",why="no_consent"} 1.0',
        'liveguard_degraded_decisions_total{policy="support-password-reset"}',
        "liveguard_decisions_total{action=",
        f'liveguard_second_pass_escalations_total{{policy="support-password-reset",version="{LIVE_VERSION}"}}',
        "liveguard_reviews",
        'liveguard_raw_media_escalations_total{policy="support-password-reset"} 1.0',
        'liveguard_raw_media_escalations_per_1000_sessions{policy="support-password-reset"} 333.3',
        "liveguard_store_commit_batch_size",
        'liveguard_http_requests_total{route="/v1/decisions",status="200"} 3.0',
    ):
        assert name in m, name


def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    # The suite serves the unsigned bundled policies under the override: /health says so.
    assert health["signoff"]["signoff"] == "override"
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for p in (
        "/v1/decisions", "/v1/decisions/{decision_id}", "/v1/policies", "/v1/policies/{policy_id}",
        "/v1/data/liveguard/{package}/decision", "/v1/reviews/next", "/v1/reviews/{item_id}/outcome",
        "/v1/reviews/stats", "/v1/shadow/{policy_id}", "/health", "/metrics",
    ):  # fmt: skip
        assert p in paths, p
    post = paths["/v1/decisions"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["example"]["action"]
    schemas = spec["components"]["schemas"]
    assert schemas["DecisionRequest"]["examples"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_store_unavailable_is_503_not_lost(sqlite_url, keys) -> None:
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        app.state.runtime.writer.stop()  # the log stops: nothing may be acknowledged
        r = c.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"]))
        assert r.status_code == 503
        assert r.json()["code"] == "store_unavailable"
        assert c.get("/health").status_code == 503
    assert _rows(sqlite_url, DecisionEventRow) == []


def test_unexpected_failure_in_a_decision_call_is_a_500_with_the_request_id(
    sqlite_url, keys
) -> None:
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app, raise_server_exceptions=False) as c:

        async def broken(*_a, **_k):
            raise RuntimeError("boom")

        app.state.runtime.decide = broken
        r = c.post(
            "/v1/decisions",
            json=request_body(),
            headers={**bearer(keys["decide"]), "X-Request-ID": "req-500"},
        )
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error" and r.json()["request_id"] == "req-500"
    assert r.headers["x-request-id"] == "req-500"


def test_unknown_opa_package_goes_to_the_routes(client: TestClient, keys) -> None:
    r = client.post(
        "/v1/data/liveguard/No-Such/decision", json={"input": {}}, headers=bearer(keys["decide"])
    )
    assert r.status_code in (404, 422)
    assert len(r.headers.get_list("x-request-id")) == 1
