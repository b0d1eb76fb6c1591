"""synthetic_voice_deep 1.x recipe: a dilated 1-D CNN over the normalised log bands of a 1 s
window, joined with the edge screener's window statistics, trained in torch on the CPU.

Input per window (`detectors.deep_input.deep_inputs`): 64 gain- and channel-normalised log
bands x 98 frames with a speech mask, and the 168 `window_stats_v2` statistics. The CNN
(stride-2 front, two residual dilated layers) is pooled over speech frames only (masked mean
and standard deviation per channel), concatenated with the standardised statistics and read
by a small MLP head. A clip's (or call's) score is the mean logit of its windows with enough
speech, like the edge screener.

Training: the same call-condition views and the same group weights as the edge recipe
(every spoof system and bona fide corpus has the same total weight within its class), a
seeded draw of MAX_ROWS (window, view) rows, EPOCHS passes, AdamW, random band masking
(a codec or suppressor that removes a band must not flip the verdict) and input noise on
the statistics. One torch thread, fixed seeds: the same data gives the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.deep_input import deep_inputs
from detectors.frontend import N_BANDS
from detectors.training.stats_v2 import MIN_SPEECH_FRAMES, TRAIN_CONDITIONS, group_weights

CHANNELS = 64
HIDDEN = 64
EPOCHS = 3
MAX_ROWS = 30_000
BATCH = 256
LR = 2e-3
WEIGHT_DECAY = 1e-3
BAND_MASK = 8  # at most this many adjacent bands zeroed per training window
STATS_NOISE = 0.1


@dataclass
class DeepInput:
    """Prepared rows of one condition view: what `fit` and `clip_logits` take."""

    bands: np.ndarray  # (N, 64, T) float16
    mask: np.ndarray  # (N, T) bool
    stats: np.ndarray  # (N, 168) float32
    frames: np.ndarray  # (N,) speech frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, idx: np.ndarray) -> DeepInput:
        return DeepInput(self.bands[idx], self.mask[idx], self.stats[idx], self.frames[idx])


def prepare_windows(windows: np.ndarray, chunk: int = 2048) -> DeepInput:
    parts = []
    for s in range(0, len(windows), chunk):
        b, m, st = deep_inputs(windows[s : s + chunk])
        parts.append((b.astype(np.float16), m[:, 0] > 0, st))
    if not parts:
        t = windows.shape[1]
        return DeepInput(
            np.zeros((0, N_BANDS, t), np.float16),
            np.zeros((0, t), bool),
            np.zeros((0, 168), np.float32),
            np.zeros(0, np.float32),
        )
    mask = np.concatenate([p[1] for p in parts])
    return DeepInput(
        np.concatenate([p[0] for p in parts]),
        mask,
        np.concatenate([p[2] for p in parts]),
        mask.sum(axis=1).astype(np.float32),
    )


def build_net(
    channels: int, hidden: int, use_stats: bool, stats_mean: np.ndarray, stats_std: np.ndarray
) -> Any:
    """The torch module (imported lazily: the runtime never needs torch)."""
    import torch
    from torch import nn

    class DeepNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.use_stats = use_stats
            self.register_buffer("stats_mean", torch.tensor(stats_mean, dtype=torch.float32))
            self.register_buffer(
                "stats_inv_std", torch.tensor(1.0 / stats_std, dtype=torch.float32)
            )
            self.platt = nn.Parameter(torch.tensor([1.0, 0.0]), requires_grad=False)
            self.c1 = nn.Conv1d(N_BANDS, channels, 5, stride=2, padding=2)
            self.c2 = nn.Conv1d(channels, channels, 3, padding=2, dilation=2)
            self.c3 = nn.Conv1d(channels, channels, 3, padding=4, dilation=4)
            n_in = 2 * channels + (len(stats_mean) if use_stats else 0)
            self.h1 = nn.Linear(n_in, hidden)
            self.h2 = nn.Linear(hidden, 1)
            self.drop = nn.Dropout(0.2)

        def forward(self, bands: Any, mask: Any, stats: Any) -> tuple[Any, Any]:
            h = torch.relu(self.c1(bands))
            h = h + torch.relu(self.c2(h))
            h = h + torch.relu(self.c3(h))
            m = mask[:, :, ::2][:, :, : h.shape[2]]  # the speech mask at the stride-2 rate
            n = torch.clamp(m.sum(dim=2), min=1.0)
            mean = (h * m).sum(dim=2) / n
            var = (((h - mean[:, :, None]) ** 2) * m).sum(dim=2) / n
            feats = [mean, torch.sqrt(var + 1e-5)]
            if self.use_stats:
                feats.append((stats - self.stats_mean) * self.stats_inv_std)
            z = torch.relu(self.h1(torch.cat(feats, dim=1)))
            logit = self.h2(self.drop(z))
            score = torch.sigmoid(self.platt[0] * logit + self.platt[1])
            return logit, score

    return DeepNet()


class DeepModel:
    def __init__(self, net: Any) -> None:
        self.net = net

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def logits(self, x: DeepInput, batch: int = 1024) -> np.ndarray:
        import torch

        self.net.eval()
        out = np.zeros(len(x), np.float32)
        with torch.no_grad():
            for s in range(0, len(x), batch):
                b = torch.from_numpy(x.bands[s : s + batch].astype(np.float32))
                m = torch.from_numpy(x.mask[s : s + batch, None, :].astype(np.float32))
                st = torch.from_numpy(x.stats[s : s + batch])
                out[s : s + batch] = self.net(b, m, st)[0][:, 0].numpy()
        return out

    def set_platt(self, a: float, b: float) -> None:
        import torch

        with torch.no_grad():
            self.net.platt.copy_(torch.tensor([a, b]))

    def export_onnx(self, path: Path, doc: str = "") -> None:
        """Inputs bands (N, 64, T), mask (N, 1, T), stats (N, 168); outputs logit, score."""
        import onnx
        import torch

        self.net.eval()
        t = 98
        args = (torch.zeros(2, N_BANDS, t), torch.ones(2, 1, t), torch.zeros(2, 168))
        torch.onnx.export(
            self.net,
            args,
            str(path),
            input_names=["bands", "mask", "stats"],
            output_names=["logit", "score"],
            dynamic_axes={k: {0: "batch"} for k in ("bands", "mask", "stats", "logit", "score")},
            opset_version=17,
            dynamo=False,
        )
        model = onnx.load(str(path))
        model.doc_string = doc
        model.producer_name = "liveguard"
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


class DeepV1:
    name = "synthetic_voice_deep 1.x (dilated 1-D CNN on normalised log bands + window statistics)"
    feature_set = "windows_v4"
    train_conditions: tuple[str, ...] = TRAIN_CONDITIONS

    def __init__(
        self,
        channels: int = CHANNELS,
        hidden: int = HIDDEN,
        use_stats: bool = True,
        epochs: int = EPOCHS,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.channels = channels
        self.hidden = hidden
        self.use_stats = use_stats
        self.epochs = epochs
        self.max_rows = max_rows

    def prepare(self, windows: np.ndarray) -> DeepInput:  # type: ignore[override]
        return prepare_windows(windows)

    def fit(
        self,
        views: Sequence[tuple[DeepInput, np.ndarray]],
        labels: np.ndarray,
        clip_mask: np.ndarray,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> DeepModel:
        import torch

        torch.set_num_threads(1)  # the CPU is shared; one thread is also reproducible
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        strata = np.asarray(groups if groups is not None else labels.astype(str))
        picks: list[tuple[int, np.ndarray]] = []
        ys, ws = [], []
        for v, (x, clip) in enumerate(views):
            keep = np.flatnonzero(clip_mask[clip] & (x.frames >= MIN_SPEECH_FRAMES))
            picks.append((v, keep))
            ys.append(labels[clip[keep]])
            ws.append(group_weights(labels[clip[keep]], strata[clip[keep]]))
        view_of = np.concatenate([np.full(len(k), v) for v, k in picks])
        row_of = np.concatenate([k for _, k in picks])
        y_all, w_all = np.concatenate(ys).astype(np.float32), np.concatenate(ws)
        if len(y_all) > self.max_rows:
            sel = np.sort(rng.choice(len(y_all), self.max_rows, replace=False))
            view_of, row_of, y_all, w_all = view_of[sel], row_of[sel], y_all[sel], w_all[sel]
        for c in (0, 1):  # balance the classes
            m = y_all == c
            if m.any():
                w_all[m] *= 0.5 * w_all.sum() / w_all[m].sum()
        w_all = (w_all / w_all.mean()).astype(np.float32)
        # gather the drawn rows once (float16 bands keep this to a few hundred MB)
        first = views[0][0]
        n = len(y_all)
        bands = np.empty((n, *first.bands.shape[1:]), np.float16)
        mask = np.empty((n, first.mask.shape[1]), bool)
        stats = np.empty((n, first.stats.shape[1]), np.float32)
        for v, (x, _) in enumerate(views):
            sel = view_of == v
            bands[sel], mask[sel], stats[sel] = (
                x.bands[row_of[sel]],
                x.mask[row_of[sel]],
                x.stats[row_of[sel]],
            )
        s_mean = stats.mean(axis=0)
        s_std = stats.std(axis=0) + 1e-6
        net = build_net(self.channels, self.hidden, self.use_stats, s_mean, s_std)
        opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        steps = self.epochs * ((n + BATCH - 1) // BATCH)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=max(steps, 1))
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        net.train()
        for _ in range(self.epochs):
            order = rng.permutation(n)
            for s in range(0, n, BATCH):
                idx = order[s : s + BATCH]
                b = bands[idx].astype(np.float32)
                # random band masking: up to BAND_MASK adjacent bands zeroed per window
                width = rng.integers(0, BAND_MASK + 1, len(idx))
                lo = rng.integers(0, N_BANDS, len(idx))
                rows = np.arange(N_BANDS)[None, :]
                drop = (rows >= lo[:, None]) & (rows < (lo + width)[:, None])
                b[drop] = 0.0
                st = stats[idx] + (
                    STATS_NOISE * s_std * rng.standard_normal((len(idx), 168))
                ).astype(np.float32)
                logit, _ = net(
                    torch.from_numpy(b),
                    torch.from_numpy(mask[idx, None, :].astype(np.float32)),
                    torch.from_numpy(st.astype(np.float32)),
                )
                loss = (
                    loss_fn(logit[:, 0], torch.from_numpy(y_all[idx]))
                    * torch.from_numpy(w_all[idx])
                ).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return DeepModel(net)

    def clip_logits(
        self, model: DeepModel, x: DeepInput, clip: np.ndarray, n_clips: int
    ) -> np.ndarray:
        ok = x.frames >= MIN_SPEECH_FRAMES
        logits = np.zeros(len(x))
        if ok.any():
            logits[ok] = model.logits(x[np.flatnonzero(ok)])
        sums = np.bincount(clip[ok], logits[ok], n_clips)
        cnt = np.bincount(clip[ok], None, n_clips)
        out = np.full(n_clips, np.nan)
        out[cnt > 0] = sums[cnt > 0] / cnt[cnt > 0]
        return out
