"""What the policy could not see, nobody may see later: not the log, an audit read, a
reviewer, the shadow log or a metric label (issue 10, point 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from engine.api import create_app
from engine.store.db import make_engine
from engine.store.tables import DecisionEventRow, ReviewItemRow, ShadowResultRow
from tests.engine.service.conftest import POLICIES, ROOT, bearer, make_settings

NO_CONSENT: dict[str, Any] = json.loads((ROOT / "examples" / "payout-no-consent.json").read_text())
PAYOUT = "payout-authorization"


def _to_review(body: dict[str, Any]) -> dict[str, Any]:
    """The no-consent example after three failed attempts: the payout policy's review rule."""
    out = json.loads(json.dumps(body))
    out["identity"]["failed_attempts"] = 3
    return out


def _rows(db_url: str, model: type) -> list:
    engine = make_engine(db_url)
    with Session(engine) as s:
        rows = list(s.exec(select(model)).all())
    engine.dispose()
    return rows


def _decide(c: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/v1/decisions", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    return r.json()


def test_media_signals_without_consent_are_not_stored(sqlite_url, keys) -> None:
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        _decide(c, keys["decide"], NO_CONSENT)
    [row] = _rows(sqlite_url, DecisionEventRow)
    assert "audio.synthetic_voice" not in json.dumps(row.signals)
    assert [s["name"] for s in row.signals] == ["session.anomaly"]


def test_audit_read_returns_no_unconsented_media_signal(sqlite_url, keys) -> None:
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        d = _decide(c, keys["decide"], NO_CONSENT)
        event = c.get(f"/v1/decisions/{d['decision_id']}", headers=bearer(keys["audit"])).json()
    # (The policy's own second-pass obligation names the detector; the request's signal —
    # its detector ref, score and evidence — must be nowhere.)
    assert [s["name"] for s in event["signals"]] == ["session.anomaly"]
    assert "synthetic_voice@" not in json.dumps(event)
    assert "0.91" not in json.dumps(event)


def test_reviewer_never_sees_unconsented_media_signals(sqlite_url, keys) -> None:
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        d = _decide(c, keys["decide"], _to_review(NO_CONSENT))
        assert d["action"] == "review", d
        item = c.get("/v1/reviews/next", headers=bearer(keys["review"]))
    assert item.status_code == 200, item.text
    checklist = item.json()["checklist"]
    assert [s["name"] for s in checklist["confidence"]["signals"]] == ["session.anomaly"]
    assert "synthetic_voice" not in json.dumps(checklist["what_tripped"])
    [stored] = _rows(sqlite_url, ReviewItemRow)
    assert "synthetic_voice@" not in json.dumps(stored.checklist)


def test_shadow_candidate_sees_only_what_the_live_policy_saw(sqlite_url, keys) -> None:
    app = create_app(
        make_settings(sqlite_url, shadow=f"{PAYOUT}@{POLICIES / PAYOUT}"), periodic_purge=False
    )
    with TestClient(app) as c:
        _decide(c, keys["decide"], NO_CONSENT)
    [row] = _rows(sqlite_url, ShadowResultRow)
    assert "synthetic_voice" not in json.dumps(row.result)


def test_unconsented_detector_is_not_a_metric_label(sqlite_url, keys) -> None:
    body = json.loads(json.dumps(NO_CONSENT))
    body["signals"][0]["detector"] = "secret_voice_probe@9.9.9"
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        _decide(c, keys["decide"], body)
        metrics = c.get("/metrics").text
    assert "secret_voice_probe" not in metrics


def test_undeclared_signal_is_not_stored(tmp_path: Path, sqlite_url, keys) -> None:
    body = json.loads(json.dumps(NO_CONSENT))
    body["session"]["consent"]["media_analysis"] = True
    body["signals"].append(
        {"name": "behavior.keystrokes", "modality": "behavior", "score": 0.5, "confidence": 0.5}
    )
    app = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(app) as c:
        _decide(c, keys["decide"], body)
    [row] = _rows(sqlite_url, DecisionEventRow)
    assert "behavior.keystrokes" not in json.dumps(row.signals)
