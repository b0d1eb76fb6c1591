"""structlog: JSON off a terminal, request and decision ids bound, secrets masked."""

from __future__ import annotations

import json

import structlog
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.telemetry import configure_logging
from tests.engine.service.conftest import bearer, make_settings, request_body


def test_decision_log_lines_carry_ids_and_no_secrets(sqlite_url, keys, capsys) -> None:
    app = create_app(make_settings(sqlite_url, log_level="INFO"), periodic_purge=False)
    with TestClient(app) as c:
        r = c.post(
            "/v1/decisions",
            json=request_body(),
            headers={**bearer(keys["decide"]), "X-Request-ID": "req-123"},
        )
        assert r.headers["x-request-id"] == "req-123"
        c.get("/v1/decisions/" + r.json()["decision_id"], headers=bearer(keys["audit"]))
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    [decision] = [x for x in lines if x["event"] == "decision"]
    assert decision["request_id"] == "req-123"
    assert decision["decision_id"] == r.json()["decision_id"]
    assert decision["action"] == "step_up" and decision["level"] == "info"
    [read] = [x for x in lines if x["event"] == "audit.read"]
    assert read["role"] == "audit" and read["count"] == 1
    for key in keys.values():
        assert key not in out and key[16:] not in out


def test_secrets_are_masked_by_name_and_shape(capsys) -> None:
    configure_logging("json", "INFO")
    log = structlog.get_logger("t")
    log.info(
        "x",
        authorization="Bearer abc.def",
        api_key="k",
        note="sent Bearer zzz123 and lg_0123456789ab_SECRETsecret",
    )
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["authorization"] == "[redacted]" and line["api_key"] == "[redacted]"
    assert "zzz123" not in line["note"] and "SECRETsecret" not in line["note"]
    assert "lg_0123456789ab_[redacted]" in line["note"]


def test_console_format_in_a_terminal(capsys) -> None:
    configure_logging("console", "INFO")
    structlog.get_logger("t").info("hello", request_id="r1")
    out = capsys.readouterr().out
    assert "hello" in out and not out.lstrip().startswith("{")


def test_direct_info_line_matches_the_processor_chain(capsys) -> None:
    from engine.telemetry import log_info

    configure_logging("json", "INFO")
    log = structlog.get_logger("t")
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        fields = {"policy": "p", "risk": 0.5, "error": None, "token": "s3cret"}
        log.info("decision", **fields)
        log_info(log, "decision", **fields)
    finally:
        structlog.contextvars.clear_contextvars()
    chain, direct = (json.loads(x) for x in capsys.readouterr().out.strip().splitlines()[-2:])
    assert chain.pop("timestamp")[:13] == direct.pop("timestamp")[:13]
    assert chain == direct and direct["token"] == "[redacted]"
