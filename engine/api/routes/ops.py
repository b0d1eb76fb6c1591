"""Health (OPA-compatible: 200 when ready) and Prometheus metrics; no key needed.

``/health`` answers 503 when the service would not decide: the decision log is down, or
decisions are being refused for load (the in-flight budget or the receiving bound is full,
or refused someone within the last ``retry_after_s``). The body says which, with
``code: overloaded`` for saturation, so a balancer stops sending and a person sees why.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.api.auth import runtime
from engine.api.routes.common import errors
from engine.api.schemas import Health
from engine.core.errors import LiveguardError
from engine.store.db import StoreUnavailable

router = APIRouter(tags=["operations"])


class Saturated(LiveguardError):
    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


@router.get("/health", response_model=Health, summary="Ready to decide?", responses=errors(503))
async def health(request: Request) -> Health:
    rt = runtime(request)
    if not rt.started or not rt.writer.alive:
        raise StoreUnavailable("the decision log is not running")
    gates = getattr(request.app.state, "gates", None)
    if gates is not None:
        window = rt.settings.retry_after_s
        for gate in (gates.in_flight, gates.receiving):
            if gate.saturated(window):
                raise Saturated(
                    f"saturated: decisions are being refused, {gate.count} of {gate.limit} "
                    f"requests {gate.name}",
                    window,
                )
    return Health(signoff=rt.signoff)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    # Rendered in a thread: however long it takes, the event loop keeps deciding. Its size
    # is bounded by the label sets (engine.telemetry), not by what callers sent.
    text = await asyncio.to_thread(generate_latest, runtime(request).metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
