"""Who is calling: Bearer API tokens (and session tokens from password login), and role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from hub import accounts
from hub.keys import AGENT, RUNTIME, SCOPE, VIA_COOKIE
from hub.store.models import Agent
from hub.web.errors import ApiError, Handler
from hub.web.scope import Scope, load_scope
from hub.web.security import SESSION_COOKIE, UNSAFE_METHODS, check_csrf_header

PUBLIC_PREFIXES = ("/healthz", "/api/v1/auth/login", "/api/v1/openapi.json", "/webhooks/", "/static/", "/u/", "/t/")


def _bearer(request: web.Request) -> tuple[str | None, bool]:
    """The token and whether it came from the browser's session cookie (which then needs CSRF proof)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie, cookie is not None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the calling agent to API requests; 401 with a JSON body when there is none."""
    if not request.path.startswith("/api/") or request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    token, via_cookie = _bearer(request)
    if token is None:
        raise ApiError(401, "unauthorized", "missing credentials: send Authorization: Bearer <token>")
    async with request.app[RUNTIME].factory() as session:
        agent = await accounts.agent_for_token(session, token)
        if agent is not None:
            # Nearly every API view needs the scope: read it on this connection, not a second one.
            request[SCOPE] = await load_scope(session, agent)
    if agent is None:
        raise ApiError(401, "unauthorized", "invalid or revoked token")
    if via_cookie and request.method in UNSAFE_METHODS:
        check_csrf_header(request, token)
    request[AGENT] = agent
    request[VIA_COOKIE] = via_cookie
    return await handler(request)


def current_agent(request: web.Request) -> Agent:
    return request[AGENT]


async def current_scope(request: web.Request) -> Scope:
    """The calling agent's visibility scope, read once per request."""
    if SCOPE not in request:
        async with request.app[RUNTIME].factory() as session:
            request[SCOPE] = await load_scope(session, current_agent(request))
    return request[SCOPE]


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """Allow a view only to agents with one of these roles; others get 403."""

    def decorate(view: Handler) -> Handler:
        @wraps(view)
        async def guarded(request: web.Request) -> web.StreamResponse:
            agent = current_agent(request)
            if agent.role not in roles:
                raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}; you are {agent.role}")
            return await view(request)

        return guarded

    return decorate


View = Callable[[web.Request], Awaitable[web.StreamResponse]]
