"""Login, the calling agent, and agent administration."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text
from sqlmodel import col, select

from hub import accounts
from hub.keys import RUNTIME
from hub.store.models import Agent
from hub.web import schemas, serialize
from hub.web.auth import current_agent, requires
from hub.web.errors import ApiError, parse_body
from hub.web.hardening import guard_login, record_login, session_ttl
from hub.web.openapi import doc
from hub.web.schemas import AgentCreate, LoginBody


@doc("Liveness: the database (and Redis) answer", response=schemas.HealthOut, public=True, errors=(),
     tag="meta")
async def healthz(request: web.Request) -> web.Response:
    """200 when the database (and Redis, when configured) answer; 503 naming what failed."""
    runtime = request.app[RUNTIME]
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # a health check reports failures rather than raising them
        checks["database"] = f"error: {type(exc).__name__}"
    if runtime.redis is not None:
        try:
            await runtime.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # same: report, don't raise
            checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if healthy else "degraded", "checks": checks},
                             status=200 if healthy else 503)


@doc("Password login; returns a bearer token", body=LoginBody, response=schemas.LoginOut, public=True,
     errors=(400, 401), tag="agents")
async def login(request: web.Request) -> web.Response:
    """Password login; returns a bearer token for this session."""
    body = await parse_body(request, LoginBody)
    await guard_login(request, body.email)
    async with request.app[RUNTIME].factory() as session, session.begin():
        agent = await accounts.login(session, body.email, body.password)
        await record_login(request, body.email, agent is not None)
        if agent is None:
            raise ApiError(401, "unauthorized", "wrong email or password")
        token = await accounts.create_token(session, agent, name="login", ttl=session_ttl(request))
    return web.json_response({"token": token, "agent": serialize.agent(agent)})


@doc("The calling agent", response=schemas.AgentOut, errors=(401,), tag="agents")
async def me(request: web.Request) -> web.Response:
    return web.json_response(serialize.agent(current_agent(request)))


@doc("All agents (admin)", response=schemas.AgentList, tag="agents")
@requires("admin")
async def list_agents(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        rows = (await session.execute(select(Agent).order_by(col(Agent.id)))).scalars().all()
    return web.json_response({"items": [serialize.agent(a) for a in rows]})


@doc("Create an agent (admin)", body=AgentCreate, response=schemas.AgentOut, status=201,
     errors=(400, 401, 403, 409), tag="agents")
@requires("admin")
async def create_agent(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentCreate)
    async with request.app[RUNTIME].factory() as session, session.begin():
        try:
            agent = await accounts.add_agent(session, body.email, role=body.role, name=body.name,
                                             password=body.password, actor=current_agent(request).email)
        except accounts.AccountError as exc:
            status = 409 if "exists" in str(exc) else 400
            raise ApiError(status, "invalid_field" if status == 400 else "conflict", str(exc), exc.field) from None
    return web.json_response(serialize.agent(agent), status=201)
