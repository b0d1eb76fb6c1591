"""The FastAPI app, built by a factory from settings (nothing at import time)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from engine.api.errors import install_error_handlers
from engine.api.fastpath import DecisionFastPath
from engine.api.middleware import BodyLimitMiddleware, InFlightLimitMiddleware, RequestIdMiddleware
from engine.api.routes import decisions, opa, ops, policies, reviews, shadow
from engine.runtime import Runtime
from engine.settings import Settings, get_settings
from engine.telemetry import configure_logging

log = structlog.get_logger("liveguard")

DESCRIPTION = """\
Trust decisions for live calls: **log, warn, step_up, review or block**, with reasons.

Authenticate with `Authorization: Bearer <key>` (keys from `liveguard keys create --role R`;
roles `decide`, `review`, `audit`, `admin`). Every decision is committed to the decision log
before it is answered. OPA clients can query `POST /v1/data/liveguard/<package>/decision`.
"""


def create_app(settings: Settings | None = None, *, periodic_purge: bool = True) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings)
        await run_in_threadpool(rt.start)
        app.state.runtime = rt
        if periodic_purge:
            rt.start_purger()
        # Everything built so far (policies, models, the app) lives as long as the process:
        # keep it out of the collector's way, so a full collection walks only per-request
        # garbage instead of pausing every in-flight decision for tens of milliseconds.
        gc.collect()
        gc.freeze()
        if settings.insecure_dev:
            log.warning("auth.disabled", reason="--insecure-dev: every caller is admin")
        log.info("serve.ready", policies=str(settings.policies), store=rt.db.dialect.name)
        try:
            yield
        finally:
            rt.stop_purger()
            await run_in_threadpool(rt.stop)

    app = FastAPI(
        title="liveguard",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (
        decisions.router,
        opa.router,
        policies.router,
        reviews.router,
        shadow.router,
        ops.router,
    ):
        app.include_router(router)

    # Outermost first on the wire: request id → in-flight bound → body limit → decision
    # fast path → app.
    if settings.fast_decisions:
        app.add_middleware(DecisionFastPath, runtime=lambda: app.state.runtime)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        InFlightLimitMiddleware,
        limit=settings.max_in_flight,
        retry_after_s=settings.retry_after_s,
        on_reject=lambda: app.state.runtime.metrics.overloaded.inc(),
        gauge=None,
    )
    app.add_middleware(
        RequestIdMiddleware,
        on_response=lambda route, status: app.state.runtime.metrics.http_requests.labels(
            route, str(status)
        ).inc(),
    )
    return app


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory engine.api.app:create_app_from_env`` (several workers)."""
    return create_app(get_settings())
