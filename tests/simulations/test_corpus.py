"""Corpora are reproducible, follow the shares, and decide exactly like decide()."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine import PolicyRepository, decide
from simulations import SEVERITY, VectorizedPolicy
from simulations.corpus import (
    CorpusError,
    batch_from_corpus,
    corpus_metadata,
    generate_corpus,
    requests_from_corpus,
    write_corpus,
)

from .conftest import POLICIES

YAML_IDS = [
    "conference-default",
    "executive-meeting",
    "support-password-reset",
    "payout-authorization",
]


def test_same_seed_writes_identical_bytes(tmp_path, catalog):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_corpus(generate_corpus(catalog, 2_000, seed=5), a)
    write_corpus(generate_corpus(catalog, 2_000, seed=5), b)
    assert a.read_bytes() == b.read_bytes()


def test_other_seed_gives_other_sessions(catalog):
    a = generate_corpus(catalog, 500, seed=5)
    b = generate_corpus(catalog, 500, seed=6)
    assert a.column("audio.synthetic_voice.score") != b.column("audio.synthetic_voice.score")


def test_sessions_follow_scenario_shares(corpus, catalog):
    counts = dict(
        zip(*np.unique(corpus.column("scenario").to_pylist(), return_counts=True), strict=True)
    )
    for s in catalog:
        assert abs(counts[s.id] - s.share * corpus.num_rows) <= 1


def test_ground_truth_follows_the_scenario(corpus, catalog):
    attack = {s.id: s.is_attack for s in catalog}
    rows = corpus.select(["scenario", "attack"]).to_pylist()
    assert all(r["attack"] == attack[r["scenario"]] for r in rows)


def test_metadata_says_which_signals_were_hand_set(corpus):
    meta = corpus_metadata(corpus)
    sources = {s["id"]: s["signals"] for s in meta["scenarios"]}
    assert sources["voice_clone"]["audio.synthetic_voice"] == "fallback"
    assert sources["mixed_mode"]["av.lipsync"] == "hand_set"


def test_session_count_is_bounded(catalog):
    with pytest.raises(CorpusError, match="--sessions"):
        generate_corpus(catalog, 0, seed=1)


@pytest.mark.parametrize("policy_id", YAML_IDS)
def test_vectorized_matches_decide_on_every_corpus_session(corpus, policy_id):
    policy = PolicyRepository(POLICIES).get(policy_id)
    result = VectorizedPolicy(policy).evaluate(batch_from_corpus(corpus))
    requests = requests_from_corpus(corpus)
    mismatches = []
    for i, req in enumerate(requests):
        d = decide(req, policy)
        on_boundary = any(abs(d.fused.risk - t) < 1e-9 for t in d.thresholds.values())
        if not on_boundary and SEVERITY[d.action] != result.action[i]:
            mismatches.append((i, d.action.value, int(result.action[i])))
    assert not mismatches, mismatches[:5]


def test_profile_rows_feed_profile_signals(catalog):
    rows = 4
    profile = pa.table(
        {
            "clip": [f"c{i}.flac" for i in range(rows)],
            "label": ["spoof"] * rows,
            "system": ["YourTTS zero-shot TTS"] * rows,
            "corpus": ["x"] * rows,
            "condition": ["mulaw_8k"] * rows,
            "audio.synthetic_voice.score": [0.91, 0.92, 0.93, 0.94],
            "audio.synthetic_voice.confidence": [0.8] * rows,
        }
    )
    clone = [s for s in catalog if s.id == "voice_clone"]
    table = generate_corpus(clone, 50, seed=1, profile=profile)
    scores = table.column("audio.synthetic_voice.score").to_numpy()
    present = scores[~np.isnan(scores)]
    assert present.size > 0 and set(np.round(present, 2)) <= {0.91, 0.92, 0.93, 0.94}
