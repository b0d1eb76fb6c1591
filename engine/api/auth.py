"""Bearer API keys with roles (decide, review, audit, admin; admin may do anything).

Every request but the probes and the docs is authenticated from its headers by the front
door (``admit``, called by ``AdmissionMiddleware`` before any body is read); the routes'
``require`` dependency then checks the role of the principal it found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.core.errors import LiveguardError
from engine.service.runtime import Runtime
from engine.store.keys import Principal, key_id_of

log = structlog.get_logger("liveguard.auth")

bearer = HTTPBearer(auto_error=False, description="An API key from `liveguard keys create`.")


class Unauthenticated(LiveguardError):
    code = "unauthenticated"
    http_status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(LiveguardError):
    code = "forbidden"
    http_status = 403


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys with any of ``roles`` (or admin)."""

    async def dependency(
        request: Request,
        creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> Principal:
        who: Principal | None = getattr(request.state, "principal", None)
        if who is not None:  # authenticated by the front door already
            check_role(who, roles)
            return who
        key = creds.credentials if creds is not None else None
        who = await authorize(runtime(request), key, roles)
        request.state.principal = who
        return who

    return dependency


async def authorize(rt: Runtime, key: str | None, roles: tuple[str, ...]) -> Principal:
    """The caller behind ``key`` if it may act in one of ``roles``; else 401 or 403."""
    who = await rt.authenticate(key)
    if who is None:
        raise Unauthenticated(
            "missing or unknown API key; send 'Authorization: Bearer <key>'"
            if key
            else "missing API key; send 'Authorization: Bearer <key>'"
        )
    check_role(who, roles)
    return who


async def authorize_stream(
    ws: WebSocket, key: str | None, route: str, roles: tuple[str, ...] = ("decide",)
) -> Principal:
    """``authorize`` for a stream's key (each protocol carries it its own way); a refusal is
    logged as on HTTP, with the key's public id, never the key, and re-raised for the
    protocol to answer in its own terms."""
    try:
        return await authorize(runtime(ws), key, roles)
    except LiveguardError as exc:
        log.warning(
            "auth.refused",
            route=route,
            code=exc.code,
            key_id=key_id_of(key) if key else None,
            client=ws.client.host if ws.client else None,
        )
        raise


def check_role(who: Principal, roles: tuple[str, ...]) -> None:
    """403 unless ``who`` may act in one of ``roles`` (none: any authenticated caller)."""
    if roles and not any(who.allows(r) for r in roles):
        raise Forbidden(f"this key's role {who.role!r} may not do this; needs {' or '.join(roles)}")


async def admit(rt: Runtime, scope: MutableMapping[str, Any], roles: tuple[str, ...]) -> Principal:
    """Authenticate a request from its headers alone (the body is not read yet); the
    principal is left in the scope's state for the routes. 401 or 403 otherwise."""
    authorization = None
    for k, v in scope["headers"]:
        if k == b"authorization":
            authorization = v.decode("latin-1")
            break
    who = await authorize(rt, bearer_key(authorization), ())
    # Kept before the role check, so a 403 is logged with the caller's key id and role.
    scope.setdefault("state", {})["principal"] = who
    check_role(who, roles)
    return who


def bearer_key(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <key>`` header, as ``HTTPBearer`` reads
    them (any other scheme, or none, is no key)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def log_refusal(scope: MutableMapping[str, Any], route: str, status: int) -> None:
    """One warning per 401/403: route, method, the key's public id (never the key) and
    the client address, so probing leaves a trace."""
    who: Principal | None = scope.get("state", {}).get("principal")
    authorization = None
    for k, v in scope["headers"]:
        if k == b"authorization":
            authorization = v.decode("latin-1")
            break
    if who is not None:
        key_id: str | None = who.key_id
    elif authorization is None:
        key_id = None
    else:
        key_id = key_id_of(bearer_key(authorization)) or "malformed"
    client = scope.get("client")
    log.warning(
        "auth.refused",
        status=status,
        route=route,
        method=scope.get("method"),
        path=str(scope.get("path", ""))[:200],
        key_id=key_id,
        role=who.role if who is not None else None,
        client=client[0] if client else None,
    )
