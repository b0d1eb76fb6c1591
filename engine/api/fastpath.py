"""The decision routes without the framework's per-request machinery.

``POST /v1/decisions`` and ``POST /v1/data/liveguard/<package>/decision`` are the hot
path. FastAPI's routes for them stay (they define the OpenAPI document and serve when the
fast path is off), but the app's front door (``engine.api.app.LiveguardApp``) sends the
decision calls here, doing only what the routes do: authenticate (401/403: the front door
does it from the headers before the body is read; here only when mounted without it),
validate the raw body straight from JSON with pydantic-core (422 naming the field, same error body),
decide and commit (``Runtime.decide``), and send the already-serialized decision. No
dependency injection, no dict round trip, no response re-validation, no route scan.

It sits inside the same request-id, admission (auth, bounded body read) and in-flight
middleware as the routes and inside ``CrashGuard``: our errors become their usual
responses here, anything unexpected becomes the 500 the app's handler would give.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import structlog
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from engine.api.auth import authorize, bearer_key
from engine.api.errors import error_body, liveguard_error_response, validation_error_response
from engine.api.middleware import ASGIApp, Message, Receive, Scope, Send
from engine.api.schemas import OpaQuery, opa_result_json
from engine.core.errors import LiveguardError
from engine.core.models import DecisionRequest
from engine.service.runtime import Runtime

DECISIONS = "/v1/decisions"
OPA_DECISION = "/v1/data/liveguard/{package}/decision"
_OPA = re.compile(r"^/v1/data/liveguard/([a-z][a-z0-9_]{0,99})/decision$")
_ROLES = ("decide",)
#: Scope key the front door sets: the OPA package of a decision call ("" for /v1/decisions).
PACKAGE = "liveguard.decision_package"
log = structlog.get_logger("liveguard.api")


@dataclass(frozen=True, slots=True)
class _Route:
    path: str


_DECISIONS_ROUTE, _OPA_ROUTE = _Route(DECISIONS), _Route(OPA_DECISION)
_JSON_HEADERS = [(b"content-type", b"application/json")]


def decision_route(scope: Scope) -> str | None:
    """For a decision call, the OPA package it names ("" for ``/v1/decisions``); else None.

    Resolved once by the app's front door and handed to the fast path in the scope.
    """
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path = scope["path"]
    if path == DECISIONS:
        return ""
    m = _OPA.match(path) if path.startswith("/v1/data/") else None
    return m.group(1) if m else None


def route_of(package: str) -> _Route:
    """The route template of a decision call (what metrics and refusal logs label it by)."""
    return _OPA_ROUTE if package else _DECISIONS_ROUTE


class CrashGuard:
    """What Starlette's server-error middleware does for the routes: an unexpected
    exception is logged and answered 500 (same body as the app's handler), never a
    dropped connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("request.crashed", error=type(exc).__name__)
            if started:
                raise
            body = error_body(scope, "internal_error", "unexpected error; see the service log")
            await JSONResponse(body, 500)(scope, receive, send)


class DecisionFastPath:
    """The decision endpoint for calls the front door routed here (``PACKAGE`` in scope)."""

    def __init__(self, *, runtime: Callable[[], Runtime]) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        package = scope[PACKAGE] or None
        received = perf_counter_ns()
        # What the router would have set (the front door did already; see ``route_of``).
        scope.setdefault("route", route_of(scope[PACKAGE]))
        try:
            body = await self._answer(scope, receive, package, received)
        except LiveguardError as exc:
            await liveguard_error_response(scope, exc)(scope, receive, send)
            return
        except ValidationError as exc:
            await validation_error_response(scope, _body_errors(exc))(scope, receive, send)
            return
        except _BodyInvalid as exc:
            await validation_error_response(scope, exc.errors)(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self, scope: Scope, receive: Receive, package: str | None, received: int
    ) -> bytes:
        authorization = content_type = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                authorization = v.decode("latin-1")
            elif k == b"content-type":
                content_type = v.decode("latin-1")
        rt = self.runtime()
        if scope.get("state", {}).get("principal") is None:
            # The front door authenticates before it reads the body; never decide for a
            # caller nobody checked, should this be mounted without it.
            await authorize(rt, bearer_key(authorization), _ROLES)
        raw = await _read_body(receive)
        if not raw:
            raise _BodyInvalid("missing", "Field required")
        if not _is_json(content_type):
            raise _BodyInvalid(
                "model_attributes_type", "Expected a JSON body (Content-Type: application/json)"
            )
        rid = scope.get("state", {}).get("request_id")
        if package is None:
            request = DecisionRequest.model_validate_json(raw)
            _, wire = await rt.decide(request, request_id=rid, received_ns=received)
            return wire.encode()
        query = OpaQuery.model_validate_json(raw)
        decision, wire = await rt.decide(
            query.input, policy_id=query.policy_for(package), request_id=rid, received_ns=received
        )
        return opa_result_json(decision.decision_id, wire).encode()


class _BodyInvalid(Exception):
    """No body, or not JSON: the 422 FastAPI gives for the body as a whole."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.errors = [{"loc": ("body",), "msg": message, "type": kind}]


async def _read_body(receive: Receive) -> bytes:
    message: Message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # type: ignore[no-any-return]
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    """What FastAPI parses as JSON: application/json or application/*+json (any params)."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = mime.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors located under ``body`` as FastAPI reports them."""
    return [
        {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
