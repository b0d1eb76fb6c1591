"""Shared builders: one clean policy's governance documents, tweaked per test.

``tests/__init__.py`` must exist next to this folder's ``__init__.py``: without it pytest
would import this folder as a top-level package named ``governance`` and shadow the real one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.dataflow import DataFlowManifest
from governance.pia import PrivacyImpactAssessment

POLICY_ID = "support-password-reset"
VERSION = "1.0.0"
TODAY = date(2026, 11, 1)

CLEAN_DATAFLOW: dict[str, Any] = {
    "policy": POLICY_ID,
    "pattern": "hybrid",
    "human_review": True,
    "elements": [
        {
            "name": "caller_voice",
            "category": "raw_audio",
            "description": "Live audio of the caller, analysed on the edge node.",
            "processed_at": "edge",
            "retention_days": 0,
            "recipients": ["detector:synthetic_voice"],
            "escalation": {
                "allowed": True,
                "requires_consent": True,
                "reviewer_access": ["fraud-review-team"],
                "destination": "cloud",
                "max_seconds": 30,
                "retention_days": 7,
            },
        },
        {
            "name": "synthetic_voice_score",
            "category": "scores",
            "fields": ["signals.audio.synthetic_voice"],
            "processed_at": "edge",
            "retention_days": 90,
            "recipients": ["decision_log", "reviewers"],
        },
        {
            "name": "call_context",
            "category": "metadata",
            "fields": ["session.channel", "session.kind", "transaction.kind"],
            "processed_at": "cloud",
            "retention_days": 0,
            "recipients": ["policy"],
        },
        {
            "name": "identity_context",
            "category": "identity",
            "fields": ["identity.assurance", "device"],
            "processed_at": "cloud",
            "retention_days": 180,
            "recipients": ["policy", "decision_log"],
        },
    ],
}

CLEAN_PIA: dict[str, Any] = {
    "policy": POLICY_ID,
    "policy_version": VERSION,
    "controller": "Example Bank plc, Contact Center Operations",
    "dpo": "dpo@example.com",
    "assessed_on": date(2026, 10, 1),
    "review_date": date(2027, 4, 1),
    "processing": {
        "description": "Screen password-reset calls for cloned voices.",
        "purposes": ["prevent account takeover via voice cloning"],
    },
    "necessity_proportionality": {
        "necessity": "Voice cloning defeats knowledge-based checks.",
        "proportionality": "Scores only; raw audio never stored.",
        "data_minimisation": "The policy sees only declared fields.",
    },
    "risks": [
        {"risk": "false positive delays a customer", "likelihood": "low", "severity": "medium"}
    ],
    "mitigations": ["step-up before block"],
    "legal_basis": "legitimate_interests (GDPR Art. 6(1)(f))",
    "art9_condition": None,
    "data_subjects": ["customers"],
    "retention": {"decision_log_days": 180, "raw_media_days": 0},
    "access": [{"role": "fraud-review-team", "purpose": "review escalated sessions"}],
    "residual_risk": "low",
}


def _apply(base: dict[str, Any], edit: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    data = copy.deepcopy(base)
    if edit is not None:
        edit(data)
    return data


@pytest.fixture
def dataflow_data() -> Callable[..., dict[str, Any]]:
    """``dataflow_data(edit)`` → a deep copy of the clean manifest, mutated by ``edit``."""
    return lambda edit=None: _apply(CLEAN_DATAFLOW, edit)


@pytest.fixture
def pia_data() -> Callable[..., dict[str, Any]]:
    return lambda edit=None: _apply(CLEAN_PIA, edit)


@pytest.fixture
def make_dataflow(dataflow_data: Callable[..., dict[str, Any]]) -> Callable[..., DataFlowManifest]:
    return lambda edit=None: DataFlowManifest.model_validate(dataflow_data(edit))


@pytest.fixture
def make_pia(pia_data: Callable[..., dict[str, Any]]) -> Callable[..., PrivacyImpactAssessment]:
    return lambda edit=None: PrivacyImpactAssessment.model_validate(pia_data(edit))


@pytest.fixture
def policy_dir(tmp_path: Path) -> Callable[..., Path]:
    """``policy_dir(pia=dict|str|None, dataflow=dict|str|None)`` → a folder with those files."""

    def write(pia: Any = CLEAN_PIA, dataflow: Any = CLEAN_DATAFLOW) -> Path:
        folder = tmp_path / POLICY_ID
        folder.mkdir(exist_ok=True)
        for name, doc in (("pia.yaml", pia), ("dataflow.yaml", dataflow)):
            if doc is None:
                continue
            text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
            (folder / name).write_text(text, encoding="utf-8")
        return folder

    return write
