"""Configuration from the environment (prefix ``LIVEGUARD_``), read once at the edge.

Tests build their own ``Settings(...)`` and hand it to the factories; nothing patches it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEGUARD_", extra="ignore")

    policies: Path = Field(default=Path("policies"), description="The policy repository.")
    database_url: str = Field(
        default="sqlite:///liveguard.db",
        description="Decision log and review queue; PostgreSQL for several replicas.",
    )
    opa_url: str | None = Field(default=None, description="Remote OPA for Rego policies.")
    opa_token: SecretStr | None = None
    opa_timeout_ms: int = Field(default=50, gt=0, le=10_000)
    shadow: str | None = Field(
        default=None, description="<policy-id>@<ref|path>: a candidate run beside the live one."
    )
    shared_data: Path = Field(default=Path("../shared/data"))
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    # The decision service (engine.api / engine.service.runtime).
    host: str = "127.0.0.1"
    port: int = Field(default=8181, ge=1, le=65535)
    allow_unsigned: bool = Field(
        default=False,
        description="Serve policy versions without a board sign-off (logged at startup, "
        "shown on /health). Off: serve refuses to start on an unsigned digest.",
    )
    insecure_dev: bool = Field(
        default=False, description="No authentication: every caller is admin. Never in production."
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Admitted requests (authenticated, body received) being served; past it: "
        "503 + Retry-After.",
    )
    # The front door: what a client may hold before it is admitted (engine.api.protocol,
    # engine.api.middleware.AdmissionMiddleware).
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Request line and headers of one request; past it: 431, connection closed.",
    )
    header_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="From connection (or a request's first byte) to its last header; past it: "
        "408 (or, before any byte, the connection closed).",
    )
    body_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="From a request's last header to its last body byte; past it: 408, "
        "connection closed.",
    )
    max_receiving: int = Field(
        default=512,
        ge=1,
        description="Requests being authenticated or still sending their body, counted apart "
        "from max_in_flight; past it: 503 + Retry-After.",
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="Open connections (uvicorn's limit_concurrency); past it: 503.",
    )
    keep_alive_s: int = Field(
        default=5, ge=1, le=300, description="Idle time before a kept-alive connection closes."
    )
    retry_after_s: int = Field(default=1, ge=1)
    fast_decisions: bool = Field(
        default=True,
        description="Serve the decision routes without FastAPI's per-request machinery "
        "(same answers; off only to compare).",
    )
    writer: Literal["process", "thread"] = Field(
        default="thread",
        description="Where group commits run: a writer process (the serving process keeps "
        "its CPU and GIL) or a thread of the serving process.",
    )
    commit_batch_max: int = Field(default=256, ge=1, description="Group commit: events per tx.")
    sqlite_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite only. full: a decision is answered once its event is fsynced "
        "(survives power loss). normal: once it is in the write-ahead log (survives a crash "
        "or kill -9 of the service, not of the machine: a power loss can lose the last "
        "commits); no fsync on the answer's path.",
    )
    eval_budget_ms: float = Field(
        default=5.0,
        gt=0,
        le=1000,
        description="A policy's evaluation budget when its manifest declares no "
        "eval_budget_ms; past it the decision is the policy's fail_mode (policy_eval_timeout).",
    )
    eval_budget_max_ms: float = Field(
        default=100.0,
        gt=0,
        le=1000,
        description="The most any policy may take: a larger eval_budget_ms is capped to this.",
    )
    eval_wait_slack_ms: float = Field(
        default=20.0,
        ge=0,
        le=1000,
        description="Policies evaluated off the event loop (Rego): how much longer than the "
        "budget a decision waits for a worker thread to pick the evaluation up and answer.",
    )
    rego_engine: Literal["regorus", "regopy"] = Field(
        default="regorus",
        description="The embedded Rego engine for policies whose manifest names none: "
        "regorus (its bytecode VM when the policy is provably fail-safe there, else its "
        "tree-walking Engine) or regopy (rego-cpp).",
    )
    rego_isolation: Literal["process", "thread"] = Field(
        default="process",
        description="Where the service evaluates Rego: a worker process per policy, killed "
        "when an evaluation overruns (rego-cpp cannot be interrupted), or a worker thread "
        "(a runaway then keeps its thread and a core until it finishes).",
    )
    eval_kill_after_ms: float = Field(
        default=100.0,
        ge=0,
        le=60_000,
        description="How long past its budget a Rego evaluation may go on before its worker "
        "process is killed and restarted (the caller already has its fail_mode answer).",
    )
    # Live sessions (engine.streaming): calls streamed in over WebSocket protocols.
    max_live_sessions: int = Field(
        default=200,
        ge=1,
        description="Live sessions streamed to this replica at once; past it a new stream "
        "is refused with its protocol's busy answer (Twilio: close 1013).",
    )
    stream_max_frame_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="The largest WebSocket message a stream client may send (close 1009).",
    )
    stream_max_messages_per_s: int = Field(
        default=200,
        ge=10,
        description="Messages per second one stream may send (Twilio sends 50 per track).",
    )
    stream_start_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="From the WebSocket's opening to its start."
    )
    stream_idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A started stream that sends nothing for this long is closed (1008).",
    )
    audiohook_client_secret: SecretStr | None = Field(
        default=None,
        description="Genesys AudioHook: the integration's client secret (base64, as Genesys "
        "shows it). Set: every upgrade must carry a valid HTTP message signature (401 "
        "otherwise). Unset: signatures are not checked (logged at startup).",
    )
    audiohook_max_nonces: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Genesys AudioHook with a client secret: unexpired signature nonces held "
        "in the store (shared by every replica) to refuse a replayed upgrade; past it a new "
        "upgrade is answered 503 + Retry-After rather than a nonce forgotten early.",
    )
    audiohook_pause_lag_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="Genesys AudioHook: when the detectors are this far behind real time (the "
        "oldest waiting window's wait) at two blocks of a stream in a row, the stream is "
        "paused (AudioHook pause) for 2 s. 0: at once (tests).",
    )
    live_preload_detectors: bool = Field(
        default=False,
        description="Load the live detectors' models at startup (in the background) "
        "instead of on the first live session (which then waits ~1 s for them).",
    )
    live_detectors: list[str] | None = Field(
        default=None, description="Detectors run on live audio (default: every registered one)."
    )
    second_pass_windows: int = Field(
        default=5,
        ge=1,
        le=30,
        description="Stage 2: windows of a session a second_pass obligation runs its "
        "heavier detectors on (once per session).",
    )
    max_second_pass_sessions: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Sessions in second pass at once on this replica; past it an obligation "
        "is refused (counted) and the session goes on with its first-pass detectors.",
    )
    escalation_key: SecretStr | None = Field(
        default=None,
        description="AES-256 key (32 bytes, URL-safe base64) sealing escalated raw-media "
        "excerpts at rest. Without it nothing is escalated (refused, logged, counted).",
    )
    sse_max_subscribers: int = Field(
        default=8, ge=1, le=1000, description="Event-stream subscribers per live session."
    )
    sse_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, description="Comment line sent on an idle event stream."
    )
    live_presence_ttl_s: float = Field(
        default=15.0,
        ge=1,
        le=600,
        description="PostgreSQL: a replica refreshes its live sessions' directory rows every "
        "third of this; a row not refreshed for this long (its replica died) is expired.",
    )
    live_forward_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="PostgreSQL: how long PUT /v1/sessions/{id}/context on a replica other "
        "than the session's waits for the owning replica's decision; past it: 504.",
    )
    live_max_backlog_windows: int = Field(
        default=400,
        ge=1,
        le=100_000,
        description="Windows waiting for the detectors across this replica's sessions; past "
        "it the oldest windows of the lowest-risk sessions are dropped (counted).",
    )
    purge_interval_s: float = Field(default=3600.0, gt=0)
    review_claim_timeout_s: int = Field(default=1800, ge=1)
    fail_retention_days: int = Field(
        default=30, ge=1, description="Retention of fail-mode events whose policy did not load."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
