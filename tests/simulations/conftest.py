"""Shared corpora: small, seeded, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.corpus import generate_corpus, write_corpus
from simulations.scenarios import load_catalog

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, catalog) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    write_corpus(generate_corpus(catalog, 6_000, seed=11), path)
    return path


@pytest.fixture(scope="session")
def corpus(corpus_file):
    from simulations.corpus import read_corpus

    return read_corpus(corpus_file)[0]
