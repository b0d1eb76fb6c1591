"""Shared corpora: small, seeded, generated once per test session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import PolicyRepository
from engine.service.runtime import Runtime
from engine.settings import Settings
from engine.store import reviews
from engine.store.db import make_engine
from engine.store.export import export_history
from simulations.corpus import generate_corpus, requests_from_corpus, write_corpus
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


POLICY = "support-password-reset"


@pytest.fixture(scope="session")
def history(tmp_path_factory, corpus) -> tuple[Path, str]:
    """Corpus sessions decided by the real runtime into SQLite, one review resolved, exported."""
    tmp = tmp_path_factory.mktemp("history")
    url = f"sqlite:///{tmp / 'log.db'}"
    settings = Settings(
        database_url=url,
        policies=POLICIES,
        log_level="WARNING",
        log_format="json",
        purge_interval_s=3600.0,
        allow_unsigned=True,  # the bundled policies carry no board sign-off
    )
    from simulations.backtest import in_scope

    policy = PolicyRepository(POLICIES).get(POLICY)
    rows = in_scope(policy, corpus)[:120].tolist()
    reqs = requests_from_corpus(corpus, rows)
    rt = Runtime(settings)
    rt.start()
    try:

        async def run() -> None:
            for r in reqs:
                await rt.decide(r, policy_id=POLICY)

        asyncio.run(run())
    finally:
        rt.stop()
    engine = make_engine(url)
    item = reviews.claim_next(engine, "tester")
    assert item is not None, "expected at least one review among 120 sessions"
    reviews.record_outcome(engine, item.id, "tester", "legitimate", "fine", admin=True)
    out = tmp / "history.parquet"
    report = export_history(engine, out, since=datetime(2000, 1, 1, tzinfo=UTC))
    engine.dispose()
    assert report.rows == len(reqs)
    return out, item.decision_id
