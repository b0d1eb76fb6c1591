"""The VAD's split graph (detectors/vad.py) against silero's own, stepped whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from detectors.vad import CHUNK, STATE_SHAPE, SileroVad, UnexpectedGraphError, split_model

from .helpers import SR, noise, speech


@pytest.fixture(scope="module")
def both() -> tuple[SileroVad, SileroVad]:
    return SileroVad(), SileroVad(split=False)


def test_the_installed_model_takes_the_split_path(both: tuple[SileroVad, SileroVad]) -> None:
    fast, whole = both
    assert fast.split and not whole.split


def test_split_probabilities_and_state_equal_the_whole_graph_over_three_windows(
    both: tuple[SileroVad, SileroVad],
) -> None:
    fast, whole = both
    x = speech()[: 3 * SR]
    n = noise(3.0, 0.05)
    s_fast = [fast.new_state(), fast.new_state()]
    s_whole = [whole.new_state(), whole.new_state()]
    for k in range(3):  # the state carries from window to window
        wins = [x[k * SR : (k + 1) * SR], n[k * SR : (k + 1) * SR]]
        a, b = fast.run(wins, s_fast), whole.run(wins, s_whole)
        for p, q in zip(a, b, strict=True):
            assert p.shape == q.shape == (SR // CHUNK,)
            np.testing.assert_allclose(p, q, atol=1e-5)
    for p, q in zip(s_fast, s_whole, strict=True):
        np.testing.assert_allclose(p, q, atol=1e-4)


def test_a_shorter_window_in_the_batch_keeps_its_state_after_its_last_chunk(
    both: tuple[SileroVad, SileroVad],
) -> None:
    fast, whole = both
    x = speech()[:SR]
    short = x[: SR // 2]
    s_fast = [fast.new_state(), fast.new_state()]
    s_whole = [whole.new_state(), whole.new_state()]
    a = fast.run([x, short], s_fast)
    b = whole.run([x, short], s_whole)
    assert len(a[1]) == len(short) // CHUNK
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    np.testing.assert_allclose(s_fast[1], s_whole[1], atol=1e-4)
    alone = [fast.new_state()]
    fast.run([short], alone)  # the same window on its own ends in the same state
    np.testing.assert_allclose(s_fast[1], alone[0], atol=1e-5)


def _not_silero(path: Path) -> Path:
    """A valid model with silero's inputs and outputs but none of its layout."""
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", 576])
    state = helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "B", 128])
    sr = helper.make_tensor_value_info("sr", TensorProto.INT64, [])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["B", 1])
    state_n = helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "B", 128])
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sigmoid", ["m"], ["output"]),
        helper.make_node("Identity", ["state"], ["stateN"]),
    ]
    graph = helper.make_graph(nodes, "not_silero", [inp, state, sr], [out, state_n])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_split_model_names_what_it_did_not_find(tmp_path: Path) -> None:
    with pytest.raises(UnexpectedGraphError, match="top level is not one If"):
        split_model(onnx.load(_not_silero(tmp_path / "m.onnx")))


def test_a_model_laid_out_otherwise_is_stepped_whole(tmp_path: Path) -> None:
    vad = SileroVad(_not_silero(tmp_path / "m.onnx"))
    assert not vad.split
    state = np.ones(STATE_SHAPE, dtype=np.float32)
    probs = vad.run([np.zeros(SR, dtype=np.float32)], [state])[0]
    assert probs.shape == (SR // CHUNK,)
    np.testing.assert_allclose(probs, 0.5)  # sigmoid(mean of silence)
    np.testing.assert_array_equal(state, 1.0)
