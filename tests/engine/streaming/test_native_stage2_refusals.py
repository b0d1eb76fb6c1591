"""Escalation refused, in process (the real Runtime, session registry and detectors): no
key configured, no retention declared, no consent. Each leaves no row, and the refusals
that are the runtime's to make are counted by reason."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlmodel import Session

from engine.service.runtime import Runtime
from engine.store.tables import EscalatedExcerptRow
from engine.streaming.sessions import LiveContext, LiveSessions
from tests.engine.service.conftest import POLICIES, make_settings
from tests.engine.streaming.native_client import policies, reset_context

KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


def _run(tmp: Path, policy_dir: Path, key: str | None, escalation: bool) -> tuple[int, dict]:
    settings = make_settings(
        f"sqlite:///{tmp / 'liveguard.db'}",
        policies=policy_dir,
        escalation_key=key,
        live_detectors=["audio.quality"],
    )
    rt = Runtime(settings)
    rt.start()
    registry = CollectorRegistry()
    try:

        async def call() -> None:
            live = LiveSessions(
                rt,
                max_sessions=2,
                max_subscribers=1,
                detectors=["audio.quality"],
                registry=registry,
            )
            await live.start()
            ctx = LiveContext.model_validate(reset_context(escalation=escalation))
            sess = await live.open("refused-1", protocol="native", call_id="c", context=ctx)
            x = (np.random.default_rng(0).standard_normal(3 * 16_000) * 0.05).astype(np.float32)
            for i in range(0, len(x), 1_600):
                await live.push_audio(sess, x[i : i + 1_600])
            await live.end("refused-1")
            await live.stop()

        asyncio.run(call())
        with Session(rt.db) as s:
            rows = len(s.execute(select(EscalatedExcerptRow)).scalars().all())
    finally:
        rt.stop()
    counts = {
        m.labels["outcome"]: m.value
        for metric in registry.collect()
        if metric.name == "liveguard_live_escalations"
        for m in metric.samples
        if m.name.endswith("_total")
    }
    return rows, counts


@pytest.fixture
def declared(tmp_path: Path) -> Path:
    return policies(tmp_path)


def test_no_key_refuses_and_counts(tmp_path: Path, declared: Path) -> None:
    rows, counts = _run(tmp_path, declared, None, escalation=True)
    assert rows == 0 and counts == {"refused_no_key": 1.0}


def test_no_declared_retention_refuses(tmp_path: Path) -> None:
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    shutil.copytree(POLICIES / "support-password-reset", bundled / "support-password-reset")
    df = bundled / "support-password-reset" / "dataflow.yaml"
    text = df.read_text()
    assert "      retention_days: 7\n" in text
    df.write_text(text.replace("      retention_days: 7\n", ""))  # escalation without retention
    rows, counts = _run(tmp_path, bundled, KEY, escalation=True)
    assert rows == 0 and counts == {"refused_no_declared_retention": 1.0}


def test_no_consent_captures_nothing(tmp_path: Path, declared: Path) -> None:
    rows, counts = _run(tmp_path, declared, KEY, escalation=False)
    # The engine already withheld raw_media_allowed: no attempt, no capture, no row.
    assert rows == 0 and counts == {}


def test_with_everything_in_place_it_is_stored(tmp_path: Path, declared: Path) -> None:
    """The same call, key, retention and consent present: the control for the three above."""
    rows, counts = _run(tmp_path, declared, KEY, escalation=True)
    assert rows == 1 and counts == {"capturing": 1.0, "stored": 1.0}
