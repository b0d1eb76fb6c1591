"""Conditions over coded corpus columns answer exactly as the engine's masks over plain ones."""

from __future__ import annotations

import numpy as np
import pytest

from engine import PolicyRepository
from engine.core.conditions import compile_mask
from simulations import vectorized
from simulations.corpus import batch_from_corpus
from simulations.masks import Coded, compile_coded_mask, decode
from simulations.vectorized import VectorizedPolicy

from .conftest import POLICIES

YAML_IDS = [
    "conference-default",
    "executive-meeting",
    "support-password-reset",
    "payout-authorization",
]


def _conditions(policy_id: str) -> list:
    spec = PolicyRepository(POLICIES).get(policy_id).spec
    return [item.when for item in (*spec.adjustments, *spec.rules)]


@pytest.mark.parametrize("policy_id", YAML_IDS)
def test_every_policy_condition_matches_the_engine_mask_on_the_corpus(corpus, policy_id):
    batch = batch_from_corpus(corpus)
    coded = dict(batch.context)
    plain = {k: decode(v) for k, v in coded.items()}
    assert any(isinstance(v, Coded) for v in coded.values())
    n = batch.size
    # Fused and signal fields a condition may name, the same arrays for both forms.
    rng = np.random.default_rng(5)
    for f in ("fused.risk", "fused.evidence_mass", "fused.signal_count"):
        coded[f] = plain[f] = rng.random(n)
    for name, score in batch.scores.items():
        coded[f"signals.{name}.score"] = plain[f"signals.{name}.score"] = score
        coded[f"signals.{name}.present"] = plain[f"signals.{name}.present"] = ~np.isnan(score)
    for when in _conditions(policy_id):
        want = compile_mask(when)(plain)
        got = compile_coded_mask(when)(coded, n)
        assert np.array_equal(got, want), when


def test_absent_values_match_nothing_and_not_matches_them():
    cols = {
        "device.posture": Coded(["managed", "compromised"], np.array([0, 1, -1], np.int32)),
        "device.new_device": Coded([False, True], np.array([-1, 1, 0], np.int8)),
    }
    at_most_managed = compile_coded_mask({"device.posture": {"lte": "managed"}})
    assert at_most_managed(cols, 3).tolist() == [True, False, False]
    not_new = compile_coded_mask({"not": {"device.new_device": True}})
    assert not_new(cols, 3).tolist() == [True, False, True]
    missing = compile_coded_mask({"transaction.kind": "wire_transfer"})
    assert missing(cols, 3).tolist() == [False, False, False]
    assert compile_coded_mask({"not": {"transaction.kind": "x"}})(cols, 3).all()


@pytest.mark.parametrize("policy_id", YAML_IDS)
def test_threshold_table_equals_thresholds_per_session(corpus, policy_id, monkeypatch):
    policy = PolicyRepository(POLICIES).get(policy_id)
    batch = batch_from_corpus(corpus)
    table = VectorizedPolicy(policy).evaluate(batch)
    monkeypatch.setattr(vectorized, "MAX_TABLE_ADJUSTMENTS", -1)  # per session instead
    per_session = VectorizedPolicy(policy)
    assert per_session._table is None
    rows = per_session.evaluate(batch)
    assert np.array_equal(table.action, rows.action)
    assert np.array_equal(table.risk, rows.risk)
