"""Deciding (role decide) and reading the decision log (role audit; every read logged)."""

from __future__ import annotations

from datetime import UTC, datetime
from time import perf_counter_ns
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine.api.auth import require, runtime
from engine.api.routes.common import NotFound, errors, json_response, request_id
from engine.api.schemas import EXAMPLE_DECISION, EventPage
from engine.core.models import Decision, DecisionRequest
from engine.store import audit
from engine.store.events import DecisionEventV1
from engine.store.keys import Principal

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])

DecisionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]


@router.post(
    "",
    response_model=Decision,
    summary="Decide one live session",
    description="Choose the policy by the request's `policy` field or by `applies_to`, decide, "
    "commit the decision event to the log, then answer. A policy fault yields the policy's "
    "`fail_mode` action (with `error` set), logged like any decision.",
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE_DECISION}}},
        **errors(401, 403, 404, 409, 413, 422, 503),
    },
)
async def post_decision(
    request: Request,
    body: DecisionRequest,
    _: Principal = Depends(require("decide")),
) -> Response:
    received = perf_counter_ns()
    _, wire = await runtime(request).decide(
        body, request_id=request_id(request), received_ns=received
    )
    return json_response(wire)


@router.get(
    "/{decision_id}",
    response_model=DecisionEventV1,
    summary="Read one stored decision event (audited)",
    responses=errors(401, 403, 404, 422, 503),
)
async def get_decision(
    request: Request,
    decision_id: DecisionId,
    who: Principal = Depends(require("audit")),
) -> DecisionEventV1:
    rt = runtime(request)
    event = await run_in_threadpool(audit.read_event, rt.db, decision_id, who, request_id(request))
    if event is None:
        raise NotFound(f"no stored decision {decision_id!r} (never made, or purged)")
    return event


@router.get(
    "",
    response_model=EventPage,
    summary="List stored decision events since a time (audited)",
    responses=errors(401, 403, 422, 503),
)
async def list_decisions(
    request: Request,
    since: Annotated[datetime, Query(description="ISO 8601 time; events at or after it.")],
    after: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="Paging: the last id seen at `since`."
        ),
    ] = None,
    policy: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Principal = Depends(require("audit")),
) -> EventPage:
    rt = runtime(request)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    events = await run_in_threadpool(
        lambda: audit.read_events(
            rt.db,
            since,
            who,
            after_id=after,
            policy=policy,
            limit=limit,
            request_id=request_id(request),
        )
    )
    nxt = None
    if len(events) == limit:
        last = events[-1]
        q = {"since": last.time.isoformat(), "after": last.decision_id, "limit": limit}
        if policy:
            q["policy"] = policy
        nxt = urlencode(q)
    return EventPage(events=events, next=nxt)
