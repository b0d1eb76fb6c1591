"""The one place errors become HTTP responses: our taxonomy's code → its status."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.core.errors import LiveguardError

log = structlog.get_logger("liveguard.api")


def _body(
    request: Request, code: str, message: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return error_body(request.scope, code, message, errors)


def error_body(
    scope: Any, code: str, message: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "errors": errors or [],
        "request_id": scope.get("state", {}).get("request_id"),
    }


def liveguard_error_response(scope: Any, exc: LiveguardError) -> JSONResponse:
    """One of our errors as its HTTP response (the handler and the decision fast path)."""
    headers = getattr(exc, "headers", None)
    if exc.http_status >= 500:
        log.error("request.failed", code=exc.code, message=exc.message)
    errors = [{"message": p.strip()} for p in exc.problems]
    return JSONResponse(
        error_body(scope, exc.code, exc.message, errors), exc.http_status, headers=headers
    )


def validation_error_response(scope: Any, raw: Any) -> JSONResponse:
    """422 naming the field, from pydantic/FastAPI error dicts (``loc``, ``msg``, ``type``)."""
    errors = [
        {"field": _field(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
        for e in raw
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return JSONResponse(error_body(scope, "request_invalid", message, errors), 422)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, parts = parts[0], parts[1:]
        if where != "body":
            return f"{where}.{'.'.join(parts)}" if parts else where
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LiveguardError)
    async def _ours(request: Request, exc: LiveguardError) -> JSONResponse:
        return liveguard_error_response(request.scope, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(request.scope, exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            _body(request, code, str(exc.detail)), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.crashed", error=type(exc).__name__)
        return JSONResponse(
            _body(request, "internal_error", "unexpected error; see the service log"), 500
        )
