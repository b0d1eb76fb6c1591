"""Health (OPA-compatible: 200 when ready) and Prometheus metrics; no key needed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.api.auth import runtime
from engine.api.routes.common import errors
from engine.api.schemas import Health
from engine.store.db import StoreUnavailable

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="Ready to decide?", responses=errors(503))
async def health(request: Request) -> Health:
    rt = runtime(request)
    if not rt.started or not rt.writer.alive:
        raise StoreUnavailable("the decision log is not running")
    return Health()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(runtime(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
