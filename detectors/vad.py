"""Silero VAD (the ONNX model shipped inside the `silero-vad` wheel), batched across sessions.

The package is located with `find_spec` and never imported: its `__init__` imports torch,
which the runtime must not need (the wheel is installed with `--no-deps`).

The model is a convolutional encoder per 32 ms chunk followed by an LSTM cell carried from
chunk to chunk. Stepping the whole graph once per chunk costs about 0.25 ms a call whatever
the batch (most of it the exported decoder re-slicing its LSTM weights on every call), so a
1 s window cost 9 ms on its own and ~3 ms in a batch of 16: the largest share of the edge
budget, and worst exactly when live traffic makes micro-batches small. `SileroVad` therefore
splits the graph where the recurrence starts: the encoder (no state) runs in onnxruntime on
every chunk of every window in one call, and the LSTM cell and the output layer run in numpy
from the model's own weights, one small matrix product per chunk for the whole batch. The
outputs equal the whole graph's within float32 rounding (`test_detector_vad.py` checks it
against the unmodified model). A model file whose graph is not laid out as expected is
stepped whole, as before, rather than guessed at.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

SR = 16_000
CHUNK = 512  # samples per VAD step at 16 kHz (32 ms)
CONTEXT = 64  # samples of left context the v5+ model expects before each chunk
STATE_SHAPE = (2, 128)
#: chunks the encoder takes per call: bounds its scratch memory (512 measured fastest)
ENCODER_ROWS = 512


class VadUnavailableError(RuntimeError):
    code = "detector_unavailable"


class UnexpectedGraphError(ValueError):
    """The model file is not laid out as the split expects (another silero release)."""


def silero_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailableError(
            "silero-vad is not installed (pip install --no-deps 'silero-vad>=5.1')"
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise VadUnavailableError("silero-vad is installed but data/silero_vad.onnx is missing")


def session_options() -> ort.SessionOptions:
    """One thread per model: the runtime scales by batching, not by intra-op threads."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    src = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(src, session_options(), providers=["CPUExecutionProvider"])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class _Decoder:
    """The model's LSTM cell (torch gate order i, f, g, o) and its 1x1 output convolution."""

    w_ih_t: np.ndarray  # (128, 512), the i, f, o columns halved (see _run_split)
    w_hh_t: np.ndarray  # (128, 512), the same
    bias: np.ndarray  # (512,) b_ih + b_hh, the same
    w_out: np.ndarray  # (128,)
    b_out: float


def _sixteen_khz_branch(model: onnx.ModelProto) -> onnx.GraphProto:
    """The subgraph the model runs for sr == 16000 (its top level is one If on the rate)."""
    g = model.graph
    ifs = [n for n in g.node if n.op_type == "If"]
    eq = [n for n in g.node if n.op_type == "Equal"]
    const = [n for n in g.node if n.op_type == "Constant"]
    if len(ifs) != 1 or len(eq) != 1 or len(const) != 1 or "sr" not in eq[0].input:
        raise UnexpectedGraphError("top level is not one If on the sample rate")
    rate = onnx.numpy_helper.to_array(const[0].attribute[0].t)
    branches = {a.name: a.g for a in ifs[0].attribute}
    if int(rate) == SR:
        return branches["then_branch"]
    if int(rate) == 8_000:
        return branches["else_branch"]
    raise UnexpectedGraphError(f"the If tests sr == {int(rate)}")


def split_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, _Decoder]:
    """(encoder graph: input (B, 576) -> (B, 128, 1), the decoder's weights in numpy)."""
    branch = _sixteen_khz_branch(model)
    nodes = list(branch.node)
    consts = {
        n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
        for n in nodes
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    }

    def weight(suffix: str) -> np.ndarray:
        found = [v for k, v in consts.items() if k.endswith(suffix)]
        if len(found) != 1:
            raise UnexpectedGraphError(f"no single weight named *{suffix}")
        return found[0].astype(np.float32)

    cut = [i for i, n in enumerate(nodes) if any("/encoder/" in o for o in n.output)]
    if not cut:
        raise UnexpectedGraphError("no encoder nodes")
    last = nodes[cut[-1]]
    if last.op_type != "Relu":
        raise UnexpectedGraphError(f"the encoder ends in {last.op_type}, not Relu")
    enc_out = last.output[0]
    # Everything up to the encoder's last activation; constants the decoder alone reads are
    # pruned by onnxruntime.
    body = nodes[: cut[-1] + 1]
    inp = [i for i in model.graph.input if i.name == "input"]
    if len(inp) != 1:
        raise UnexpectedGraphError("no input named 'input'")
    out = helper.make_tensor_value_info(enc_out, onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph(body, "silero_encoder_16k", inp, [out])
    encoder = helper.make_model(
        graph, opset_imports=model.opset_import, ir_version=model.ir_version
    )
    w_ih, w_hh = weight("decoder.rnn.weight_ih"), weight("decoder.rnn.weight_hh")
    w_out, b_out = weight("decoder.decoder.2.weight"), weight("decoder.decoder.2.bias")
    if w_ih.shape != (512, 128) or w_hh.shape != (512, 128) or w_out.shape != (1, 128, 1):
        raise UnexpectedGraphError("decoder weights of an unexpected shape")
    half = np.full(512, 0.5, dtype=np.float32)
    half[256:384] = 1.0  # the g gate is a tanh already
    dec = _Decoder(
        w_ih_t=np.ascontiguousarray(w_ih.T * half),
        w_hh_t=np.ascontiguousarray(w_hh.T * half),
        bias=(weight("decoder.rnn.bias_ih") + weight("decoder.rnn.bias_hh")) * half,
        w_out=w_out.reshape(128),
        b_out=float(b_out.reshape(-1)[0]),
    )
    return encoder, dec


def chunk_inputs(batch: np.ndarray, steps: int) -> np.ndarray:
    """(N, steps, CONTEXT + CHUNK): each chunk after the last CONTEXT samples of the one
    before it in the same window (zeros before the first)."""
    n = len(batch)
    ch = batch[:, : steps * CHUNK].reshape(n, steps, CHUNK)
    ctx = np.zeros((n, steps, CONTEXT), dtype=np.float32)
    ctx[:, 1:] = ch[:, :-1, -CONTEXT:]
    return np.concatenate([ctx, ch], axis=2)


class SileroVad:
    """Speech probability per 32 ms chunk for a batch of windows."""

    def __init__(self, path: Path | None = None, split: bool = True) -> None:
        self.path = path or silero_model_path()
        self._sr = np.array(SR, dtype=np.int64)
        self._whole: ort.InferenceSession | None = None
        self._encoder: ort.InferenceSession | None = None
        self._dec: _Decoder | None = None
        if split:
            try:
                encoder, self._dec = split_model(onnx.load(str(self.path)))
                self._encoder = _session(encoder)
            except UnexpectedGraphError:
                self._encoder, self._dec = None, None
        if self._encoder is None:
            self._whole = _session(self.path)

    @property
    def split(self) -> bool:
        """True when the encoder and the recurrence run apart (the fast path)."""
        return self._encoder is not None

    @staticmethod
    def new_state() -> np.ndarray:
        return np.zeros(STATE_SHAPE, dtype=np.float32)

    def run(self, windows: list[np.ndarray], states: list[np.ndarray]) -> list[np.ndarray]:
        """Speech probabilities for each window; `states` (per session) are updated in place.

        Windows of different lengths are padded with silence to the longest; the trailing
        partial chunk is not scored. Left context starts at zero for every window so that no
        raw samples of a previous window are kept in the state.
        """
        if not windows:
            return []
        n_chunks = np.array([len(w) // CHUNK for w in windows])
        steps = int(n_chunks.max())
        if steps == 0:
            return [np.zeros(0, dtype=np.float32) for _ in windows]
        batch = np.zeros((len(windows), steps * CHUNK), dtype=np.float32)
        for i, w in enumerate(windows):
            batch[i, : n_chunks[i] * CHUNK] = w[: n_chunks[i] * CHUNK]
        state = np.ascontiguousarray(np.stack(states, axis=1), dtype=np.float32)
        if self._encoder is not None:
            probs, state = self._run_split(batch, steps, n_chunks, state)
        else:
            probs, state = self._run_whole(batch, steps, n_chunks, state)
        for i in range(len(windows)):
            states[i][...] = state[:, i, :]
        return [probs[i, : n_chunks[i]] for i in range(len(windows))]

    def _run_whole(
        self, batch: np.ndarray, steps: int, n_chunks: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The unmodified graph, one call per chunk (the reference the split is held to)."""
        if self._whole is None:
            self._whole = _session(self.path)
        x = chunk_inputs(batch, steps)
        probs = np.zeros((len(batch), steps), dtype=np.float32)
        for s in range(steps):
            out, new_state = self._whole.run(
                None, {"input": np.ascontiguousarray(x[:, s]), "state": state, "sr": self._sr}
            )
            # Sessions whose window is already over keep their state unchanged.
            active = (s < n_chunks)[None, :, None]
            state = np.where(active, new_state, state)
            probs[:, s] = out[:, 0]
        return probs, state

    def _run_split(
        self, batch: np.ndarray, steps: int, n_chunks: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self._encoder is not None and self._dec is not None
        d = self._dec
        n = len(batch)
        rows = chunk_inputs(batch, steps).reshape(n * steps, CONTEXT + CHUNK)
        enc = np.concatenate(
            [
                self._encoder.run(None, {"input": rows[s : s + ENCODER_ROWS]})[0]
                for s in range(0, len(rows), ENCODER_ROWS)
            ]
        )
        if enc.shape[1:] != (128, 1):
            raise UnexpectedGraphError(f"encoder output of shape {enc.shape[1:]}")
        # The input half of every gate for all chunks at once; only h @ W_hh is sequential.
        # The weights carry the 1/2 of sigmoid(x) = (1 + tanh(x / 2)) / 2 on the i, f, o
        # rows, so that one tanh per step serves all four gates.
        gx = (enc.reshape(n * steps, 128) @ d.w_ih_t + d.bias).reshape(n, steps, 512)
        h, c = state[0].copy(), state[1].copy()
        hs = np.empty((n, steps, 128), dtype=np.float32)
        full = int(n_chunks.min())  # steps every window still has: no masking needed
        for s in range(steps):
            t = np.tanh(gx[:, s] + h @ d.w_hh_t)
            u = 0.5 * t + 0.5
            c_new = u[:, 128:256] * c + u[:, :128] * t[:, 256:384]
            h_new = u[:, 384:] * np.tanh(c_new)
            if s >= full:  # windows already over keep their state unchanged
                active = (s < n_chunks)[:, None]
                h_new = np.where(active, h_new, h)
                c_new = np.where(active, c_new, c)
            h, c = h_new, c_new
            hs[:, s] = h
        probs = _sigmoid(np.maximum(hs, 0.0) @ d.w_out + d.b_out).astype(np.float32)
        return probs, np.stack([h, c]).astype(np.float32)
