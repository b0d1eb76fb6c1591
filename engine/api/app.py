"""The FastAPI app, built by a factory from settings (nothing at import time)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points

import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from detectors.registry import ENTRY_POINT_GROUP
from engine.api.auth import admit, log_refusal
from engine.api.errors import install_error_handlers, liveguard_error_response
from engine.api.fastpath import (
    PACKAGE,
    CrashGuard,
    DecisionFastPath,
    decision_route,
    route_of,
)
from engine.api.middleware import (
    AdmissionMiddleware,
    ASGIApp,
    Gate,
    InFlightLimitMiddleware,
    Receive,
    RequestIdMiddleware,
    Scope,
    Send,
)
from engine.api.routes import (
    audiohook,
    decisions,
    excerpts,
    live,
    native,
    opa,
    ops,
    policies,
    reviews,
    shadow,
)
from engine.core.errors import LiveguardError
from engine.service.runtime import Runtime
from engine.settings import Settings, get_settings
from engine.streaming.events import session_bus
from engine.streaming.sessions import LiveSessions
from engine.telemetry import configure_logging

log = structlog.get_logger("liveguard")

DESCRIPTION = """\
Trust decisions for live calls: **log, warn, step_up, review or block**, with reasons.

Authenticate with `Authorization: Bearer <key>` (keys from `liveguard keys create --role R`;
roles `decide`, `review`, `audit`, `admin`). Every decision is committed to the decision log
before it is answered. OPA clients can query `POST /v1/data/liveguard/<package>/decision`.
"""


@dataclass(frozen=True, slots=True)
class Gates:
    """The front door's two bounds: requests not admitted yet (authenticating or still
    sending their body) and admitted ones (the decision budget). ``/health`` reads both."""

    receiving: Gate
    in_flight: Gate


class LiveguardApp(FastAPI):
    """FastAPI, behind a front door that sends the decision calls down a shorter chain.

    Every request goes through the same request-id, admission (authentication from the
    headers, then the body read in full, bounded in size and time) and in-flight middleware.
    A decision call (``POST /v1/decisions`` or the OPA-compatible path) then goes through a
    500 guard straight to the decision fast path; everything else to FastAPI's own stack.
    FastAPI's layers (server-error and exception middleware, its OpenTelemetry hook and
    body limit, the router) cost more per call than deciding does. The routes still exist,
    so the OpenAPI document is unchanged and ``fast_decisions=False`` serves the very same
    answers through them.
    """

    decision_chain: ASGIApp | None = None
    route_chain: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.decision_chain is not None:
            package = decision_route(scope)
            if package is not None:
                scope[PACKAGE] = package
                # Before the front door: a call it refuses is labelled by its route too.
                scope["route"] = route_of(package)
                await self.decision_chain(scope, receive, send)
                return
        if self.route_chain is not None:
            await self.route_chain(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, periodic_purge: bool = True) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings)
        await run_in_threadpool(rt.start)
        # Detector labels: the registered detectors (their names, not their code) and the
        # policies' declared signals; whatever else a request names counts as "other".
        rt.metrics.register_detectors(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        # Read at scrape time: no per-request cost on the decision path.
        rt.metrics.in_flight.set_function(lambda: gates.in_flight.count)
        rt.metrics.receiving.set_function(lambda: gates.receiving.count)
        app.state.runtime = rt
        # Live sessions: the detector runtime (models loaded off the loop) and the registry.
        app.state.live = LiveSessions(
            rt,
            max_sessions=settings.max_live_sessions,
            max_subscribers=settings.sse_max_subscribers,
            detectors=settings.live_detectors,
            registry=rt.metrics.registry,
            # PostgreSQL: subscribers on every replica follow sessions streamed to any.
            bus=session_bus(settings, rt.db.dialect.name, rt.metrics.registry),
        )
        await app.state.live.start(preload=settings.live_preload_detectors)
        audiohook.log_startup(settings)
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
            # Before the runtime: every live session still open gets its final decision.
            await app.state.live.stop()
            await run_in_threadpool(rt.stop)

    app = LiveguardApp(
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
        live.router,
        audiohook.router,
        native.router,
        excerpts.router,
        ops.router,
    ):
        app.include_router(router)

    # Outermost first on the wire: request id → admission (auth from the headers, then the
    # body read in full, bounded, in the receiving gate) → in-flight bound → app. Both
    # chains share the gates: the bounds are on the process, not per chain.
    gates = Gates(
        receiving=Gate(settings.max_receiving, "being received"),
        in_flight=Gate(settings.max_in_flight, "in flight"),
    )
    app.state.gates = gates

    def on_reject() -> None:
        app.state.runtime.metrics.overloaded.inc()

    def on_slow() -> None:
        app.state.runtime.metrics.slow_clients.inc()

    def on_response(route: str, status: int) -> None:
        app.state.runtime.metrics.count_http(route, status)

    def wrap(inner: ASGIApp, roles: tuple[str, ...]) -> ASGIApp:
        async def authenticate(scope: Scope) -> None:
            await admit(app.state.runtime, scope, roles)

        inner = InFlightLimitMiddleware(
            inner, gate=gates.in_flight, retry_after_s=settings.retry_after_s, on_reject=on_reject
        )
        inner = AdmissionMiddleware(
            inner,
            authenticate=authenticate,
            refusals=(LiveguardError,),
            refusal=_refusal,
            gate=gates.receiving,
            max_bytes=settings.max_body_bytes,
            body_timeout_s=settings.body_timeout_s,
            retry_after_s=settings.retry_after_s,
            on_reject=on_reject,
            on_slow=on_slow,
        )
        return RequestIdMiddleware(inner, on_response=on_response, on_refused=log_refusal)

    # The routes check their own roles (their dependency); a decision call's role is known
    # here, so a key that may not decide is refused before its body is read too.
    app.route_chain = wrap(app._framework, ())
    if settings.fast_decisions:
        fast = DecisionFastPath(runtime=lambda: app.state.runtime)
        app.decision_chain = wrap(CrashGuard(fast), ("decide",))
    return app


def _refusal(scope: Scope, exc: Exception) -> ASGIApp:
    assert isinstance(exc, LiveguardError)
    return liveguard_error_response(scope, exc)


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory engine.api.app:create_app_from_env`` (several workers)."""
    return create_app(get_settings())
