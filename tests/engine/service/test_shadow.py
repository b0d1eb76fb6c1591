"""Shadow mode: a candidate decides beside the live policy, stored apart, never answering."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from engine.api import create_app
from engine.service.runtime import Runtime
from engine.service.shadow import ShadowConfigInvalid, parse_shadow
from engine.store.db import make_engine
from engine.store.tables import DecisionEventRow, ShadowResultRow
from tests.engine.service.conftest import (
    LIVE_VERSION,
    PID,
    POLICIES,
    bearer,
    make_settings,
    request_body,
)

CANDIDATE = "99.0.0-candidate"


def _candidate(tmp_path: Path) -> Path:
    """A stricter next version of the live policy, in a folder not named after the policy."""
    folder = tmp_path / "candidates" / "spr-strict"
    shutil.copytree(POLICIES / PID, folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    manifest["version"] = CANDIDATE
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    policy = yaml.safe_load((folder / "policy.yaml").read_text())
    policy["thresholds"] = {"warn": 0.02, "step_up": 0.05, "review": 0.12, "block": 0.6}
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy))
    return folder


def test_shadow_results_are_stored_apart_and_never_answer(
    tmp_path: Path, sqlite_url: str, keys: dict[str, str]
) -> None:
    cand = _candidate(tmp_path)
    live_only = create_app(make_settings(sqlite_url), periodic_purge=False)
    with TestClient(live_only) as c:
        expected = c.post(
            "/v1/decisions", json=request_body(), headers=bearer(keys["decide"])
        ).json()
    app = create_app(make_settings(sqlite_url, shadow=f"{PID}@{cand}"), periodic_purge=False)
    h = bearer(keys["decide"])
    with TestClient(app) as c:
        got = [
            c.post("/v1/decisions", json=request_body(session={"id": f"s{i}"}), headers=h).json()
            for i in range(3)
        ]
        calm = request_body(session={"id": "calm"}, signals=[])
        got.append(c.post("/v1/decisions", json=calm, headers=h).json())
        other = request_body(
            policy="payout-authorization",
            session={"id": "pay", "kind": "payout_authorization"},
        )
        c.post("/v1/decisions", json=other, headers=h)  # another policy: not shadowed
        summary = c.get(f"/v1/shadow/{PID}", headers=bearer(keys["audit"]))
        assert summary.status_code == 200, summary.text
        s = summary.json()
        none = c.get("/v1/shadow/payout-authorization", headers=bearer(keys["audit"])).json()
    # The live answer is exactly what the live policy alone answers.
    for d in got[:3]:
        assert d["action"] == expected["action"] == "step_up"
        assert d["policy"]["version"] == LIVE_VERSION
    assert s["configured"] == f"{PID}@{cand}"
    assert s["total"] == 4
    assert s["changed"] == {"step_up->review": 3}
    assert s["agree"] == 1 and s["agreement_rate"] == 0.25
    assert s["candidates"][0]["version"] == CANDIDATE
    assert {e["decision_id"] for e in s["examples"]} == {d["decision_id"] for d in got[:3]}
    assert none["total"] == 0 and none["configured"] is None
    engine = make_engine(sqlite_url)
    with Session(engine) as db:
        live_rows = db.exec(select(DecisionEventRow)).all()
        shadow_rows = db.exec(select(ShadowResultRow)).all()
    engine.dispose()
    assert {r.policy_version for r in live_rows if r.policy_id == PID} == {LIVE_VERSION}
    assert "review" not in {r.action for r in live_rows}  # the candidate never answered
    assert all(r.shadow_version == CANDIDATE for r in shadow_rows)
    assert {r.decision_id for r in shadow_rows} <= {r.decision_id for r in live_rows}
    # A review in shadow opens no review item: only live decisions do.
    assert len(shadow_rows) == 4


def test_shadow_spec_errors(tmp_path: Path, sqlite_url: str) -> None:
    for bad in ("support-password-reset", "Bad Id@x", "x@"):
        with pytest.raises(ShadowConfigInvalid):
            parse_shadow(bad)
    other = tmp_path / "other"
    shutil.copytree(POLICIES / "payout-authorization", other)
    rt = Runtime(make_settings(sqlite_url, shadow=f"{PID}@{other}"))
    with pytest.raises(ShadowConfigInvalid, match="holds policy 'payout-authorization'"):
        rt.start()
    rt.stop()


def test_shadow_git_ref(sqlite_url: str) -> None:
    rt = Runtime(make_settings(sqlite_url, shadow=f"{PID}@HEAD"))
    rt.start()
    try:
        assert rt.shadow is not None and rt.shadow.candidate.manifest.id == PID
    finally:
        rt.stop()
