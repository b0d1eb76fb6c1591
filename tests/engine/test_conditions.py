from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.conditions import ConditionError, compile_condition, compile_mask, fields_in


def test_scalar_means_equals_and_list_means_one_of():
    p = compile_condition(
        {"session.participant": "external", "device.posture": ["unknown", "compromised"]}
    )
    assert p({"session.participant": "external", "device.posture": "unknown"})
    assert not p({"session.participant": "internal", "device.posture": "unknown"})
    assert not p({"session.participant": "external", "device.posture": "managed"})


def test_ordinal_fields_compare_by_rank():
    p = compile_condition({"identity.assurance": {"lte": "low"}})
    assert p({"identity.assurance": "none"}) and p({"identity.assurance": "low"})
    assert not p({"identity.assurance": "substantial"})


def test_numeric_range_and_combinators():
    p = compile_condition(
        {
            "transaction.value": {"gte": 10_000, "lt": 1_000_000},
            "any": [{"device.new_device": True}, {"device.geo_mismatch": True}],
            "not": {"session.kind": "internal_test"},
        }
    )
    ctx = {
        "transaction.value": 50_000,
        "device.new_device": False,
        "device.geo_mismatch": True,
        "session.kind": "payout",
    }
    assert p(ctx)
    assert not p({**ctx, "transaction.value": 5_000})
    assert not p({**ctx, "device.geo_mismatch": False})


def test_absent_field_satisfies_no_comparison():
    assert not compile_condition({"device.geo_mismatch": False})({})
    assert not compile_condition({"transaction.value": {"ne": 3}})({})


def test_signal_fields_are_addressable():
    p = compile_condition(
        {"signals.av.lipsync.score": {"gte": 0.9}, "signals.audio.replay.present": False}
    )
    assert p({"signals.av.lipsync.score": 0.95, "signals.audio.replay.present": False})


def test_every_problem_is_reported_with_its_path():
    with pytest.raises(ConditionError) as exc:
        compile_condition(
            {
                "transaction.valu": 3,
                "identity.assurance": {"gte": "medium"},
                "any": [{"device.posture": {"near": "x"}}],
                "device.new_device": {"gt": True},
            }
        )
    problems = exc.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("when.transaction.valu: unknown field")
    assert (
        "when.identity.assurance.gte: expected one of none, low, substantial, high" in problems[1]
    )
    assert problems[2].startswith("when.any[0].device.posture.near: unknown comparison")
    assert problems[3].startswith("when.device.new_device.gt:")


def test_fields_in_lists_every_named_field():
    spec = {"a.b": 1, "any": [{"c.d": 1}, {"not": {"e.f": 2}}]}
    assert fields_in(spec) == {"a.b", "c.d", "e.f"}


SPEC = {
    "transaction.value": {"gte": 10_000},
    "identity.assurance": {"lte": "low"},
    "any": [{"device.new_device": True}, {"not": {"device.posture": ["managed", "known"]}}],
}
rows = st.fixed_dictionaries(
    {
        "transaction.value": st.floats(0, 100_000, allow_nan=False),
        "identity.assurance": st.sampled_from(["none", "low", "substantial", "high"]),
        "device.new_device": st.booleans(),
        "device.posture": st.sampled_from(["managed", "known", "unknown", "compromised"]),
    }
)


@settings(max_examples=50, deadline=None)
@given(st.lists(rows, min_size=1, max_size=40))
def test_vectorized_mask_agrees_with_the_closure(batch):
    closure = compile_condition(SPEC)
    mask = compile_mask(SPEC)
    cols = {
        k: np.array([r[k] for r in batch], dtype=float if k == "transaction.value" else object)
        for k in batch[0]
    }
    assert mask(cols).tolist() == [closure(r) for r in batch]
