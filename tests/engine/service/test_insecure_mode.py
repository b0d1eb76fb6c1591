"""Insecure dev mode (no authentication) cannot be switched on in production
(issue 10, point 6): never beside real keys, never off loopback, and it says so."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.service.insecure import InsecureModeRefused, insecure_mode_problems
from engine.service.runtime import Runtime
from tests.engine.service.conftest import ROOT, make_keys, make_settings


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", "serve", "--port", "1", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_insecure_mode_refuses_to_start_when_keys_exist(sqlite_url) -> None:
    make_keys(sqlite_url, "decide")
    out = _serve("--database-url", sqlite_url, env={"LIVEGUARD_INSECURE_DEV": "true"})
    assert out.returncode == 2, out.stderr
    assert "insecure dev mode" in out.stderr and "1 API key(s) exist" in out.stderr


def test_insecure_mode_refuses_a_non_loopback_host(sqlite_url) -> None:
    out = _serve("--database-url", sqlite_url, "--host", "0.0.0.0", "--insecure-dev")
    assert out.returncode == 2, out.stderr
    assert "'0.0.0.0' is not a loopback address" in out.stderr


def test_runtime_refuses_insecure_mode_beside_keys(sqlite_url) -> None:
    """The factory path (``uvicorn --factory``) is guarded too, not only the CLI."""
    make_keys(sqlite_url, "admin")
    rt = Runtime(make_settings(sqlite_url, insecure_dev=True))
    with pytest.raises(InsecureModeRefused):
        rt.start()
    rt.db.dispose()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.8.0.1"])
def test_loopback_hosts_without_keys_may_run_insecure(host: str) -> None:
    assert insecure_mode_problems(make_settings("sqlite://", host=host), 0) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org"])
def test_other_hosts_may_not_run_insecure(host: str) -> None:
    assert insecure_mode_problems(make_settings("sqlite://", host=host), 0)
