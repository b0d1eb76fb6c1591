"""A one-class term: how far a window lies outside what real speech looks like.

A classifier trained on known synthesizers learns their marks; a synthesizer that shares
none of them can land on the bona fide side, and then its whole system scores *inverted*
(espeak-ng, a formant synthesizer, does against every neural-trained model here: AUC 0.16).
What holds for any synthesizer, known or not, is the other direction: real speech through
real call chains occupies a region of the statistics space, and a voice far outside it is
evidence of a machine whatever its marks. This term measures that from real speech alone.

The reference: one Gaussian per training view (clean, each codec, noise, reverberation,
level...), each over the standardised window statistics of the bona fide training windows in
that view, shrunk towards the identity and restricted to its top principal components (the
directions real speech varies along; the small-variance tail would flag any new
microphone). A window's distance is its squared Mahalanobis distance to the *nearest* view,
in units of that view's interquartile range above its median: one Gaussian over all views
together put every bona fide MP3 or band-limited window in its tail (measured: 90-100 %
false alarms on held-out real speech under MP3). It enters the logit as

    weight * min(max(d - hinge, 0), cap)

one-sided (looking typical is not evidence of being real: several neural systems sit
*closer* to the bona fide centre than real speech does) and capped (one odd window cannot
outvote a call). Chosen on leave-one-system-out only: see synthetic_voice.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BonaFideReference:
    mean: np.ndarray  # (C, D): one row per view
    inv_std: np.ndarray  # (C, D)
    proj: np.ndarray  # (C, D, K): whitening projection onto each view's top K components
    median: np.ndarray  # (C,): of each view's training windows' distances
    iqr: np.ndarray  # (C,)
    hinge: float  # in IQR units above the median
    cap: float
    weight: float  # logit units per IQR

    @property
    def n_parameters(self) -> int:
        return self.mean.size + self.inv_std.size + self.proj.size + 2 * self.median.size + 3

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest view, in its IQR units above its
        median."""
        out = np.empty(len(x))
        for s in range(0, len(x), 2048):  # (rows, C, D) at a time: bounded memory
            z = (x[s : s + 2048, None, :] - self.mean) * self.inv_std
            p = np.einsum("ncd,cdk->nck", z, self.proj)
            out[s : s + 2048] = (((p * p).sum(axis=2) - self.median) / self.iqr).min(axis=1)
        return out

    def term(self, x: np.ndarray) -> np.ndarray:
        """What the reference adds to each window's logit (>= 0)."""
        return self.weight * np.clip(self.distance(x) - self.hinge, 0.0, self.cap)


def _component(
    x: np.ndarray, components: int, shrink: float, max_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    if len(x) < 2 * components:
        raise ValueError(f"need at least {2 * components} bona fide windows per view, got {len(x)}")
    x = np.asarray(x, np.float64)
    if len(x) > max_rows:
        x = x[np.random.default_rng(seed).choice(len(x), max_rows, replace=False)]
    mean = x.mean(axis=0)
    inv_std = 1.0 / (x.std(axis=0) + 1e-6)
    z = (x - mean) * inv_std
    cov = (1.0 - shrink) * np.cov(z, rowvar=False) + shrink * np.eye(z.shape[1])
    ev, evec = np.linalg.eigh(cov)  # ascending
    proj = evec[:, -components:] / np.sqrt(ev[-components:])
    d = ((z @ proj) ** 2).sum(axis=1)
    q75, q25 = np.percentile(d, [75, 25])
    return mean, inv_std, proj, float(np.median(d)), float(max(q75 - q25, 1e-6))


def fit_reference(
    views: list[np.ndarray],
    components: int,
    hinge: float,
    cap: float,
    weight: float,
    shrink: float = 0.05,
    max_rows: int = 20_000,
    seed: int = 0,
) -> BonaFideReference:
    """The reference from the bona fide windows of each view, `views[c]` (N_c, D) (a seeded
    draw of max_rows per view)."""
    if not views:
        raise ValueError("need the bona fide windows of at least one view")
    parts = [_component(x, components, shrink, max_rows, seed + c) for c, x in enumerate(views)]
    return BonaFideReference(
        mean=np.stack([p[0] for p in parts]),
        inv_std=np.stack([p[1] for p in parts]),
        proj=np.stack([p[2] for p in parts]),
        median=np.array([p[3] for p in parts]),
        iqr=np.array([p[4] for p in parts]),
        hinge=hinge,
        cap=cap,
        weight=weight,
    )
