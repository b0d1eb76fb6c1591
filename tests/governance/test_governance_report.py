from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from governance.dataflow import DataFlowManifest
from governance.pia import PrivacyImpactAssessment
from governance.report import summarize


def test_summary_describes_the_posture_for_the_board(
    make_pia: Callable[..., PrivacyImpactAssessment],
    make_dataflow: Callable[..., DataFlowManifest],
) -> None:
    s = summarize(make_pia(), make_dataflow())
    assert s["pattern"] == "hybrid"
    assert s["categories"] == ["raw_audio", "scores", "metadata", "identity"]
    assert s["raw_media_escalation"] is True
    assert s["escalation_requires_consent"] is True
    assert s["reviewer_access"] == ["fraud-review-team"]
    assert s["retention_days"] == {"raw_audio": 0, "scores": 90, "metadata": 0, "identity": 180}
    assert s["residual_risk"] == "low"
    assert s["review_date"] == "2027-04-01"


def test_summary_is_json_serializable(
    make_pia: Callable[..., PrivacyImpactAssessment],
    make_dataflow: Callable[..., DataFlowManifest],
) -> None:
    json.dumps(summarize(make_pia(), make_dataflow()))


def test_summary_shows_missing_retention_as_none(
    make_dataflow: Callable[..., DataFlowManifest],
) -> None:
    def drop(d: dict[str, Any]) -> None:
        del d["elements"][2]["retention_days"]

    assert summarize(None, make_dataflow(drop))["retention_days"]["metadata"] is None


def test_summary_without_documents_renders_empty(
    make_pia: Callable[..., PrivacyImpactAssessment],
) -> None:
    s = summarize(make_pia(), None)
    assert s["pattern"] is None and s["policy"] == "support-password-reset"
