"""OPA's data API, so existing OPA clients query liveguard unchanged.

``POST /v1/data/liveguard/<package>/decision`` with ``{"input": <DecisionRequest>}``
answers ``{"result": <Decision>, "decision_id": …}`` — the package is the policy id with
``-`` written ``_``, exactly the policy's Rego package.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from engine.api.auth import require, runtime
from engine.api.routes.common import errors, json_response, request_id
from engine.api.schemas import EXAMPLE_DECISION, OpaQuery, OpaResult, opa_result_json
from engine.store.keys import Principal

router = APIRouter(tags=["opa"])


@router.post(
    "/v1/data/liveguard/{package}/decision",
    response_model=OpaResult,
    summary="OPA-compatible decision query",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "result": EXAMPLE_DECISION,
                        "decision_id": EXAMPLE_DECISION["decision_id"],
                    }
                }
            }
        },
        **errors(401, 403, 404, 409, 413, 422, 503),
    },
)
async def opa_decision(
    request: Request,
    package: Annotated[
        str, Path(pattern=r"^[a-z][a-z0-9_]{0,99}$", examples=["support_password_reset"])
    ],
    body: OpaQuery,
    _: Principal = Depends(require("decide")),
) -> Response:
    received = perf_counter_ns()
    decision, wire = await runtime(request).decide(
        body.input,
        policy_id=body.policy_for(package),
        request_id=request_id(request),
        received_ns=received,
    )
    return json_response(opa_result_json(decision.decision_id, wire))
