"""The review queue (role review): claim the next item, record its outcome, see stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine.api.auth import require, runtime
from engine.api.routes.common import NotFound, errors, request_id
from engine.api.schemas import ReviewItem, ReviewOutcomeIn, ReviewStat, ReviewStats
from engine.store import audit
from engine.store import reviews as queue
from engine.store.keys import Principal
from engine.store.tables import ReviewItemRow

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


def adapt_review(row: ReviewItemRow) -> ReviewItem:
    return ReviewItem(
        id=row.id,
        decision_id=row.decision_id,
        policy=row.policy_id,
        policy_version=row.policy_version,
        queue=row.queue,
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        sla_due_at=row.sla_due_at,
        checklist=row.checklist or {},
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        outcome=row.outcome,
        note=row.note,
        resolved_at=row.resolved_at,
    )


@router.get(
    "/next",
    response_model=ReviewItem,
    summary="Claim the next review item",
    description="Claims the oldest open item (or one whose claim is stale) for this key; "
    "204 when the queue is empty. Replicas sharing PostgreSQL never hand one item to two "
    "reviewers (FOR UPDATE SKIP LOCKED).",
    responses={204: {"description": "The queue is empty."}, **errors(401, 403, 422, 503)},
)
async def next_item(
    request: Request,
    queue_name: Annotated[str | None, Query(alias="queue", max_length=64)] = None,
    who: Principal = Depends(require("review")),
) -> ReviewItem | Response:
    rt = runtime(request)
    rid = request_id(request)

    def claim() -> ReviewItemRow | None:
        row = queue.claim_next(
            rt.db, who.key_id, queue=queue_name, claim_timeout_s=rt.settings.review_claim_timeout_s
        )
        # The item's checklist holds the session's retained context: an audited read.
        what = f"review:{row.id}" if row is not None else f"review:next?queue={queue_name or '*'}"
        audit.record_read(rt.db, who, what, [row.decision_id] if row else [], rid)
        return row

    row = await run_in_threadpool(claim)
    if row is None:
        return Response(status_code=204)
    return adapt_review(row)


@router.post(
    "/{item_id}/outcome",
    response_model=ReviewItem,
    summary="Record a review outcome",
    responses=errors(401, 403, 404, 409, 413, 422, 503),
)
async def record_outcome(
    request: Request,
    item_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$")],
    body: ReviewOutcomeIn,
    who: Principal = Depends(require("review")),
) -> ReviewItem:
    rt = runtime(request)
    rid = request_id(request)

    def resolve() -> ReviewItemRow | None:
        row = queue.record_outcome(
            rt.db, item_id, who.key_id, body.outcome, body.note, admin=who.role == "admin"
        )
        if row is not None:  # the answer carries the checklist again
            audit.record_read(rt.db, who, f"review:{row.id}:outcome", [row.decision_id], rid)
        return row

    row = await run_in_threadpool(resolve)
    if row is None:
        raise NotFound(f"no review item {item_id!r}")
    rt.metrics.observe_review_outcome(row.policy_id, row.policy_version, body.outcome)
    return adapt_review(row)


@router.get(
    "/stats",
    response_model=ReviewStats,
    summary="Review outcomes and overturn rate per policy version",
    responses=errors(401, 403, 503),
)
async def review_stats(
    request: Request, _: Principal = Depends(require("review", "audit"))
) -> ReviewStats:
    rows = await run_in_threadpool(queue.stats, runtime(request).db)
    return ReviewStats(versions=[ReviewStat(**r) for r in rows])
