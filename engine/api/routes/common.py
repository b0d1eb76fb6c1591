"""Shared bits of the routes: documented error responses, JSON passthrough, not-found."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from engine.api.schemas import ErrorBody
from engine.core.errors import LiveguardError


class NotFound(LiveguardError):
    code = "not_found"
    http_status = 404


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "Missing or unknown API key.",
        403: "The key's role may not do this.",
        404: "Not found.",
        409: "Conflict with the current state.",
        413: "Request body too large.",
        422: "Invalid request; the message names the field.",
        503: "Overloaded (see Retry-After) or the decision log is unavailable.",
    }
    return {s: {"model": ErrorBody, "description": text[s]} for s in statuses}


def json_response(body: str | bytes, status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type="application/json")


def request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")
