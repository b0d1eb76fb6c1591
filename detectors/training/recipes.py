"""Training recipes that the evaluation can retrain per split (leave-one-system-out, CV).

A recipe names its feature set (see `featurize.FEATURE_SETS`), the call conditions it trains
on, and how it fits a model on a mask of clips. The evaluation retrains exactly the recipe
that produced a shipped model, so its table measures that recipe on unseen systems.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from detectors.training import recipe as v1


class Model(Protocol):
    def logits(self, x: np.ndarray) -> np.ndarray: ...


class Recipe(Protocol):
    name: str
    feature_set: str
    train_conditions: tuple[str, ...]

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Cached features -> what `fit` and `clip_logits` take (once per condition view)."""
        ...

    def fit(
        self,
        views: Sequence[tuple[np.ndarray, np.ndarray]],
        labels: np.ndarray,
        clip_mask: np.ndarray,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> Model: ...

    def clip_logits(
        self, model: Model, x: np.ndarray, clip: np.ndarray, n_clips: int
    ) -> np.ndarray: ...


class LinearV1:
    """synthetic_voice 1.x: logistic regression on 4 s mean/std hop vectors."""

    name = "synthetic_voice 1.x (logistic regression on LFCC/MFCC statistics)"
    feature_set = "hops_v1"
    train_conditions: tuple[str, ...] = ("clean", *v1.AUG_CONDITIONS)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return x

    def fit(
        self,
        views: Sequence[tuple[np.ndarray, np.ndarray]],
        labels: np.ndarray,
        clip_mask: np.ndarray,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> Model:
        return v1.fit(views, labels, clip_mask)

    def clip_logits(
        self, model: Model, x: np.ndarray, clip: np.ndarray, n_clips: int
    ) -> np.ndarray:
        return v1.clip_logits(model.logits(x), clip, n_clips)


def get_recipe(name: str) -> Recipe:
    if name == "v1":
        return LinearV1()
    if name == "v2":
        from detectors.training.stats_v2 import StatsV2

        return StatsV2()
    if name == "v3":  # the edge screener since 3.0.0
        from detectors.training.stats_v2 import StatsV3

        return StatsV3()
    if name == "v4":  # the edge screener since 4.0.0
        from detectors.training.stats_v2 import StatsV4

        return StatsV4()
    if name == "v5":  # 4.0's recipe with the noise-suppressed (RNNoise) training view
        from detectors.training.stats_v2 import StatsV5

        return StatsV5()
    if name == "v6":  # 4.1's recipe with the Vorbis and MP3 128 kbit/s training views
        from detectors.training.stats_v2 import StatsV6

        return StatsV6()
    if name == "v6r":  # a variant measured for 4.2: the codec views for the reference only
        from detectors.training.stats_v2 import StatsV6R

        return StatsV6R()
    if name == "v6c":  # a variant measured for 4.2: the RNNoise view for the classifier too
        from detectors.training.stats_v2 import StatsV6C

        return StatsV6C()
    if name == "v7":  # 4.2's recipe with the voicing and pitch statistics (pitch.py)
        from detectors.training.stats_v2 import StatsV7

        return StatsV7()
    if name == "v8":  # 4.2's recipe, fine structure of voiced and unvoiced frames apart
        from detectors.training.stats_v2 import StatsV8

        return StatsV8()
    if name == "v9":  # v8 with the fine structure over all speech frames too
        from detectors.training.stats_v2 import StatsV9

        return StatsV9()
    if name == "deep_stats":  # the second-pass model
        from detectors.training.deep_stats import DeepStatsV1

        return DeepStatsV1()
    if name == "deep_stats_p":  # a second-pass variant: with the pitch statistics (pitch.py)
        from detectors.training.deep_stats import DeepStatsV1

        return DeepStatsV1(pitch=True)
    if name == "deep_v1":  # a second-pass variant tried (torch CNN, from the `train` extra)
        from detectors.training.deep_v1 import DeepV1

        return DeepV1()  # type: ignore[return-value]
    raise ValueError(
        f"unknown recipe {name!r} (v1, v2, v3, v4, v5, v6, v6r, v6c, v7, v8, v9, deep_stats, deep_stats_p or deep_v1)"
    )
