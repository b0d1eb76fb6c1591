"""Bearer API keys with roles (decide, review, audit, admin; admin may do anything)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.errors import LiveguardError
from engine.runtime import Runtime
from engine.store.keys import Principal

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
    if roles and not any(who.allows(r) for r in roles):
        raise Forbidden(f"this key's role {who.role!r} may not do this; needs {' or '.join(roles)}")
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
