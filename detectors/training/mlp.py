"""A tiny numpy MLP (or logistic regression when hidden=0) and its export to ONNX.

numpy keeps training reproducible and dependency-free: the same code retrains the model
inside `liveguard detectors evaluate` for the leave-one-system-out measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.training.bona_fide_reference import BonaFideReference
from signals import fit_platt


@dataclass
class MlpParams:
    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray | None  # (D, H) or None for logistic regression
    b1: np.ndarray | None
    w2: np.ndarray  # (H or D, 1)
    b2: np.ndarray  # (1,)
    platt_a: float = 1.0
    platt_b: float = 0.0
    #: a one-class term added to the logit (synthetic_voice 4.x; `bona_fide_reference.py`)
    reference: BonaFideReference | None = None

    @property
    def n_parameters(self) -> int:
        n = self.w2.size + self.b2.size
        if self.w1 is not None and self.b1 is not None:
            n += self.w1.size + self.b1.size
        if self.reference is not None:
            n += self.reference.n_parameters
        return n

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        if self.w1 is not None and self.b1 is not None:
            z = np.maximum(z @ self.w1 + self.b1, 0.0)
        out = (z @ self.w2 + self.b2)[:, 0]
        if self.reference is not None:
            out = out + self.reference.term(x)
        return out


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    hidden: int = 32,
    epochs: int = 60,
    lr: float = 3e-3,
    l2: float = 1e-3,
    batch: int = 256,
    seed: int = 0,
    groups: np.ndarray | None = None,
    dro_eta: float = 0.0,
) -> MlpParams:
    """Adam on class-balanced, sample-weighted binary cross-entropy.

    `dro_eta` > 0 (with `groups`, one label per row: spoof system or bona fide corpus):
    group distributionally robust training. After every epoch each group's weight is
    multiplied by exp(dro_eta x its mean loss) and rescaled so that its class keeps its total
    weight (the classes stay balanced; only the groups within one trade weight), so the
    fit keeps working on the systems and corpora it still gets wrong instead of polishing
    the easy ones (Sagawa et al. 2020, with the per-epoch exponentiated-gradient step).
    What it is for: a new system is judged by what holds across all the known ones."""
    rng = np.random.default_rng(seed)
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    w = np.ones(len(y)) if weights is None else weights.astype(np.float64)
    for c in (0, 1):  # balance the classes
        m = y == c
        if m.any():
            w[m] *= 0.5 * w.sum() / w[m].sum()
    w = w / w.mean()
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    z = (x - mean) / std
    d = z.shape[1]
    params: dict[str, np.ndarray] = {}
    if hidden > 0:
        params["w1"] = rng.normal(0, np.sqrt(2.0 / d), (d, hidden))
        params["b1"] = np.zeros(hidden)
        params["w2"] = rng.normal(0, np.sqrt(1.0 / hidden), (hidden, 1))
    else:
        params["w2"] = np.zeros((d, 1))
    params["b2"] = np.zeros(1)
    m1 = {k: np.zeros_like(v) for k, v in params.items()}
    m2 = {k: np.zeros_like(v) for k, v in params.items()}
    dro = dro_eta > 0 and groups is not None and len(y) > 0
    if dro:
        assert groups is not None
        g_names, g_idx = np.unique(np.asarray(groups), return_inverse=True)
        g_class = np.array([y[g_idx == k][0] for k in range(len(g_names))])
        g_weight = np.bincount(g_idx, w, len(g_names))
        q = np.ones(len(g_names))
    step = 0
    for _ in range(epochs):
        wq = w * q[g_idx] if dro else w
        order = rng.permutation(len(y))
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            zb, yb, wb = z[idx], y[idx], wq[idx]
            if hidden > 0:
                # Input noise: a cheap regulariser against memorising corpus-specific values.
                zb = zb + rng.normal(0, 0.1, zb.shape)
                pre = zb @ params["w1"] + params["b1"]
                h = np.maximum(pre, 0.0)
            else:
                h = zb
            logit = (h @ params["w2"] + params["b2"])[:, 0]
            p = 1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))
            g = ((p - yb) * wb / len(idx))[:, None]
            grads = {"w2": h.T @ g + l2 * params["w2"], "b2": g.sum(axis=0)}
            if hidden > 0:
                gh = (g @ params["w2"].T) * (pre > 0)
                grads["w1"] = zb.T @ gh + l2 * params["w1"]
                grads["b1"] = gh.sum(axis=0)
            step += 1
            for k in params:
                m1[k] = 0.9 * m1[k] + 0.1 * grads[k]
                m2[k] = 0.999 * m2[k] + 0.001 * grads[k] ** 2
                mh = m1[k] / (1 - 0.9**step)
                vh = m2[k] / (1 - 0.999**step)
                params[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
        if dro:
            h = np.maximum(z @ params["w1"] + params["b1"], 0.0) if hidden > 0 else z
            lg = (h @ params["w2"] + params["b2"])[:, 0]
            loss = y * np.logaddexp(0.0, -lg) + (1 - y) * np.logaddexp(0.0, lg)
            g_loss = np.bincount(g_idx, loss * w, len(g_names)) / g_weight
            for c in (0.0, 1.0):  # each class keeps its total weight: only groups trade
                k = g_class == c
                qk = q[k] * np.exp(dro_eta * (g_loss[k] - g_loss[k].max()))
                q[k] = qk * g_weight[k].sum() / (qk * g_weight[k]).sum()
    return MlpParams(
        mean=mean,
        std=std,
        w1=params.get("w1"),
        b1=params.get("b1"),
        w2=params["w2"],
        b2=params["b2"],
    )


def calibrate(params: MlpParams, logits: np.ndarray, labels: np.ndarray) -> MlpParams:
    """Platt scaling fitted on held-out (speaker-disjoint) logits, for balanced classes.

    Policies read a signal's logit as a log-likelihood ratio and bring their own prior, so
    the training set's class ratio is taken out of the intercept.
    """
    a, b = balanced_platt(logits, labels)
    params.platt_a, params.platt_b = a, b
    return params


def balanced_platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt (a, b) with the intercept moved from the data's spoof rate to 50 %."""
    y = np.asarray(labels).astype(int)
    a, b = fit_platt(np.asarray(scores, float).tolist(), y.tolist())
    prior = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    return float(a), float(b - np.log(prior / (1 - prior)))


#: graph nodes the int8 variant leaves in fp32: a squared distance amplifies int8 weight
#: rounding, and the projection is a small part of the cost
REFERENCE_NODES = ("ref_project",)


def export_onnx(params: MlpParams, path: str, doc: str = "") -> None:
    """Write the MLP as an ONNX graph: features -> (logit, calibrated score)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = params.mean.shape[0]

    def init(name: str, arr: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)

    inits = [init("mean", params.mean), init("inv_std", 1.0 / params.std)]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centered"]),
        helper.make_node("Mul", ["centered", "inv_std"], ["z"]),
    ]
    last = "z"
    if params.w1 is not None and params.b1 is not None:
        inits += [init("w1", params.w1), init("b1", params.b1)]
        nodes += [
            helper.make_node("MatMul", ["z", "w1"], ["h_pre"]),
            helper.make_node("Add", ["h_pre", "b1"], ["h_bias"]),
            helper.make_node("Relu", ["h_bias"], ["h"]),
        ]
        last = "h"
    inits += [
        init("w2", params.w2),
        init("b2", params.b2),
        init("platt_a", np.array([params.platt_a])),
        init("platt_b", np.array([params.platt_b])),
    ]
    nodes += [
        helper.make_node("MatMul", [last, "w2"], ["o_pre"]),
        helper.make_node(
            "Add", ["o_pre", "b2"], ["logit" if params.reference is None else "mlp_logit"]
        ),
    ]
    ref = params.reference
    if ref is not None:  # logit += weight * clip(min over views of distance - hinge, 0, cap)
        inits += [
            init("ref_mean", ref.mean),  # (C, D)
            init("ref_inv_std", ref.inv_std),
            init("ref_proj", ref.proj),  # (C, D, K)
            init("ref_median", ref.median),  # (C,)
            init("ref_inv_iqr", 1.0 / ref.iqr),
            init("ref_hinge", np.array([ref.hinge])),
            init("ref_zero", np.array([0.0])),
            init("ref_cap", np.array([ref.cap])),
            init("ref_weight", np.array([ref.weight])),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "ref_ax1"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "ref_ax2"),
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "ref_ax23"),
        ]
        nodes += [
            helper.make_node("Unsqueeze", ["features", "ref_ax1"], ["ref_x"]),  # (B, 1, D)
            helper.make_node("Sub", ["ref_x", "ref_mean"], ["ref_c"]),  # (B, C, D)
            helper.make_node("Mul", ["ref_c", "ref_inv_std"], ["ref_z"]),
            helper.make_node("Unsqueeze", ["ref_z", "ref_ax2"], ["ref_z4"]),  # (B, C, 1, D)
            # named: the int8 export keeps this projection in fp32 (REFERENCE_NODES)
            helper.make_node("MatMul", ["ref_z4", "ref_proj"], ["ref_p"], name="ref_project"),
            helper.make_node("Mul", ["ref_p", "ref_p"], ["ref_p2"]),
            helper.make_node("ReduceSum", ["ref_p2", "ref_ax23"], ["ref_d2"], keepdims=0),
            helper.make_node("Sub", ["ref_d2", "ref_median"], ["ref_dc"]),  # (B, C)
            helper.make_node("Mul", ["ref_dc", "ref_inv_iqr"], ["ref_dv"]),
            helper.make_node("ReduceMin", ["ref_dv"], ["ref_dist"], axes=[1], keepdims=1),
            helper.make_node("Sub", ["ref_dist", "ref_hinge"], ["ref_excess"]),
            helper.make_node("Max", ["ref_excess", "ref_zero"], ["ref_pos"]),
            helper.make_node("Min", ["ref_pos", "ref_cap"], ["ref_capped"]),
            helper.make_node("Mul", ["ref_capped", "ref_weight"], ["ref_term"]),
            helper.make_node("Add", ["mlp_logit", "ref_term"], ["logit"]),
        ]
    nodes += [
        helper.make_node("Mul", ["logit", "platt_a"], ["scaled"]),
        helper.make_node("Add", ["scaled", "platt_b"], ["cal"]),
        helper.make_node("Sigmoid", ["cal"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "synthetic_voice",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", d])],
        [
            helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1]),
        ],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="liveguard"
    )
    model.ir_version = 8
    model.doc_string = doc
    onnx.checker.check_model(model)
    onnx.save(model, path)
