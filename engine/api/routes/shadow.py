"""Shadow-mode summaries (role audit): agreement with the live policy, changed actions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool

from engine.api.auth import require, runtime
from engine.api.routes.common import errors, request_id
from engine.api.schemas import ShadowSummary
from engine.store import audit, shadowlog
from engine.store.keys import Principal

router = APIRouter(prefix="/v1/shadow", tags=["shadow"])


@router.get(
    "/{policy_id}",
    response_model=ShadowSummary,
    summary="How a shadowed candidate compares with the live policy",
    responses=errors(401, 403, 422, 503),
)
async def shadow_summary(
    request: Request,
    policy_id: Annotated[str, Path(max_length=200, examples=["support-password-reset"])],
    who: Principal = Depends(require("audit")),
) -> ShadowSummary:
    rt = runtime(request)
    rid = request_id(request)

    def read() -> dict[str, Any]:
        data = shadowlog.summary(rt.db, policy_id)
        # Its examples name stored decisions: an audited read, like the events themselves.
        ids = [e["decision_id"] for e in data["examples"]]
        audit.record_read(rt.db, who, f"shadow:{policy_id}", ids, rid)
        return data

    data = await run_in_threadpool(read)
    configured = (
        rt.shadow.spec.label if rt.shadow is not None and rt.shadow.policy_id == policy_id else None
    )
    return ShadowSummary(configured=configured, **data)
