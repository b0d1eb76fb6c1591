"""Prometheus label values come from bounded sets, and a scrape never runs on the loop."""

from __future__ import annotations

import asyncio
import secrets
from importlib.metadata import entry_points

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.engine.service.conftest import EXAMPLE, bearer, request_body

#: Detector labels of the registered detectors ("audio.synthetic_voice" → "synthetic_voice").
REGISTERED = {ep.name.split(".", 1)[-1] for ep in entry_points(group="liveguard.detectors")}


def _label_values(text: str, family: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for fam in text_string_to_metric_families(text)
        if fam.name == family
        for sample in fam.samples
        if label in sample.labels
    }


def test_random_detector_names_count_under_other(client: TestClient, keys: dict[str, str]) -> None:
    signal = EXAMPLE["signals"][0]
    for i in range(200):
        detector = f"x{secrets.token_hex(6)}@1.0.0"
        body = request_body(session={"id": f"m-{i}"}, signals=[{**signal, "detector": detector}])
        r = client.post("/v1/decisions", json=body, headers=bearer(keys["decide"]))
        assert r.status_code == 200, r.text
    r = client.post("/v1/decisions", json=request_body(), headers=bearer(keys["decide"]))
    assert r.status_code == 200
    values = _label_values(client.get("/metrics").text, "liveguard_signal_confidence", "detector")
    assert values == {"other", "synthetic_voice"}
    assert values <= REGISTERED | {"other"}


class _WhereCollected:
    """A collector that notes whether it was called on a running event loop."""

    def __init__(self) -> None:
        self.on_loop: list[bool] = []

    def describe(self) -> list[object]:
        return []

    def collect(self) -> list[object]:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return []


def test_metrics_are_rendered_off_the_event_loop(client: TestClient) -> None:
    where = _WhereCollected()
    client.app.state.runtime.metrics.registry.register(where)  # type: ignore[attr-defined]
    assert client.get("/metrics").status_code == 200
    assert where.on_loop == [False]
