"""Escalated excerpts of a review item (role review): listed and played, every read audited.

The raw audio a live session escalated (stage 2) is attached to that session's review
item. Listing and reading are both recorded in the read audit before the answer is sent;
the audio is decrypted only for the response and never logged.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine.api.auth import require, runtime
from engine.api.routes.common import NotFound, errors, json_response, request_id
from engine.store import excerpts
from engine.store.keys import Principal

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])

ItemId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$")]


def _key(request: Request) -> excerpts.ExcerptKey | None:
    # None is checked only once an excerpt is found: an unknown one is 404 either way.
    secret = runtime(request).settings.escalation_key
    return None if secret is None else excerpts.ExcerptKey(secret.get_secret_value())


@router.get(
    "/{item_id}/excerpts",
    summary="The escalated raw-media excerpts attached to a review item (audited)",
    responses=errors(401, 403, 404),
)
async def list_excerpts(
    request: Request, item_id: ItemId, who: Principal = Depends(require("review"))
) -> Response:
    rt = runtime(request)
    found = await run_in_threadpool(excerpts.for_review, rt.db, item_id, who, request_id(request))
    if found is None:
        raise NotFound(f"no review item {item_id!r}")
    body = [
        {
            "id": e.id,
            "session_id": e.session_id,
            "decision_id": e.decision_id,
            "policy": {"id": e.policy_id, "version": e.policy_version},
            "created_at": e.created_at.isoformat(),
            "expires_at": e.expires_at.isoformat(),
            "sample_rate": e.sample_rate,
            "duration_ms": e.duration_ms,
            "audio": f"/v1/reviews/{item_id}/excerpts/{e.id}",
        }
        for e in found
    ]
    return json_response(json.dumps({"item_id": item_id, "excerpts": body}))


@router.get(
    "/{item_id}/excerpts/{excerpt_id}",
    summary="One escalated excerpt as audio/wav (PCM16, 16 kHz, mono); the read is audited",
    responses={200: {"content": {"audio/wav": {}}}, **errors(401, 403, 404, 409, 503)},
)
async def read_excerpt(
    request: Request,
    item_id: ItemId,
    excerpt_id: ItemId,
    who: Principal = Depends(require("review")),
) -> Response:
    rt = runtime(request)
    key = _key(request)
    found = await run_in_threadpool(
        excerpts.read, rt.db, key, item_id, excerpt_id, who, request_id(request)
    )
    if found is None:
        raise NotFound(f"no excerpt {excerpt_id!r} on review item {item_id!r}")
    info, pcm = found
    return Response(
        content=excerpts.wav(pcm, info.sample_rate),
        media_type="audio/wav",
        headers={"Cache-Control": "no-store"},
    )
