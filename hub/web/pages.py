"""The web inbox: server-rendered pages (aiohttp-jinja2) over the same queries as the JSON API.

Pages authenticate with the `hub_session` cookie (an API token created at login). Every write
goes through the JSON API with the session's CSRF token in a header, or through a form carrying
it (login, logout), so a page from another site cannot act for the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import nh3
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub import accounts
from hub.keys import PRESENCE, RUNTIME, SETTINGS
from hub.routing import checks as sla_checks
from hub.store.models import Agent, ApiToken, AuditEvent, CannedResponse, Customer, Message, Team
from hub.store.types import utcnow
from hub.web import details, i18n, inbox, schemas
from hub.web.hardening import guard_login, record_login, session_ttl
from hub.web.params import path_id
from hub.web.scope import Scope, load_scope
from hub.web.security import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    MAIL_CSP,
    SESSION_COOKIE,
    csrf_ok,
    csrf_token,
    new_login_token,
)

SESSION_DAYS = 14


@dataclass(frozen=True, slots=True)
class PageSession:
    agent: Agent
    token: str
    scope: Scope


async def page_session(request: web.Request) -> PageSession | None:
    """The signed-in agent from the session cookie, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with request.app[RUNTIME].factory() as session:
        agent = await accounts.agent_for_token(session, token)
        if agent is None:
            return None
        return PageSession(agent, token, await load_scope(session, agent))


async def require_session(request: web.Request) -> PageSession:
    """The session, or a redirect to the login page."""
    found = await page_session(request)
    if found is None:
        raise web.HTTPSeeOther("/login")
    return found


def base_context(request: web.Request, found: PageSession | None) -> dict[str, Any]:
    language = i18n.language_of(found.agent.language if found else None,
                                request.headers.get("Accept-Language", ""))
    context: dict[str, Any] = {"t": i18n.translator(language), "lang": language, "strings": i18n.STRINGS[language]}
    if found is not None:
        context |= {"me": found.agent, "scope": found.scope,
                    "csrf": csrf_token(request.app[SETTINGS].secret_key, found.token)}
    return context


# --- login / logout ------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    """The sign-in page; a random token in a cookie and the form protects the login itself."""
    if await page_session(request) is not None:
        raise web.HTTPSeeOther("/")
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_token()
    response = aiohttp_jinja2.render_template(
        "login.html", request, base_context(request, None) | {"login_csrf": token, "failed": False})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                        secure=_secure(request))
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or form.get(CSRF_FIELD) != cookie:
        raise web.HTTPForbidden(text="the sign-in form expired: reload the page")
    email, password = str(form.get("email", ""))[:320], str(form.get("password", ""))[:500]
    await guard_login(request, email)
    async with request.app[RUNTIME].factory() as session, session.begin():
        agent = await accounts.login(session, email, password)
        await record_login(request, email, agent is not None)
        token = (await accounts.create_token(session, agent, name="web", ttl=session_ttl(request))
                 if agent is not None else None)
        if agent is not None:
            session.add(AuditEvent(actor=agent.email, action="agent.login", entity="agent", entity_id=agent.id))
    if token is None:
        context = base_context(request, None) | {"login_csrf": cookie, "failed": True, "email": email}
        return aiohttp_jinja2.render_template("login.html", request, context, status=401)
    response = web.HTTPSeeOther("/")
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/",
                        max_age=SESSION_DAYS * 86400, secure=_secure(request))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    found = await require_session(request)
    form = await request.post()
    if not csrf_ok(request, found.token, str(form.get(CSRF_FIELD, ""))):
        raise web.HTTPForbidden(text="bad CSRF token")
    async with request.app[RUNTIME].factory() as session, session.begin():
        row = (await session.execute(select(ApiToken).where(
            ApiToken.token_hash == accounts.token_hash(found.token)))).scalar_one()
        row.revoked_at = utcnow()
        session.add(AuditEvent(actor=found.agent.email, action="agent.logout", entity="agent",
                               entity_id=found.agent.id))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _secure(request: web.Request) -> bool:
    return request.app[SETTINGS].public_url.startswith("https://")


# --- the inbox -----------------------------------------------------------------------------


def _inbox_query(request: web.Request) -> schemas.InboxQuery:
    try:
        return schemas.InboxQuery.model_validate(dict(request.query))
    except ValueError:
        return schemas.InboxQuery()


async def _list_context(session: AsyncSession, request: web.Request, found: PageSession) -> dict[str, Any]:
    query = _inbox_query(request)
    try:
        page = await inbox.list_page(session, request.app[RUNTIME].engine.dialect.name, found.scope, query)
    except inbox.BadQuery:
        page = schemas.ConversationPage(items=[], next_before=None)
    return {"query": query, "page": page, "counts": await inbox.counts(session, found.scope)}


async def _conversation_context(session: AsyncSession, request: web.Request, found: PageSession,
                                conversation_id: int) -> dict[str, Any]:
    conversation = await details.load_conversation(session, found.scope, conversation_id)
    if conversation is None:
        raise web.HTTPNotFound(text="conversation not found")
    customer = await session.get(Customer, conversation.customer_id)
    assert customer is not None and customer.id is not None
    timeline = await details.timeline_page(session, customer.id, before=request.query.get("before"), limit=50,
                                           scope=found.scope)
    return {
        "sla": await sla_checks.sla_status(session, conversation, request.app[SETTINGS], utcnow()),
        "conversation": conversation, "customer": await details.customer_panel(session, customer, found.agent.role),
        "timeline": list(reversed(timeline.items)), "older": timeline.next_before,
        "presence": [n for n in await request.app[PRESENCE].who(conversation_id) if n.agent_id != found.agent.id],
    }


async def _directory(session: AsyncSession) -> dict[str, Any]:
    agents = (await session.execute(select(Agent).where(col(Agent.active).is_(True), Agent.role != "marketer")
                                    .order_by(col(Agent.name)))).scalars().all()
    teams = (await session.execute(select(Team).order_by(col(Team.name)))).scalars().all()
    canned = (await session.execute(select(CannedResponse).order_by(col(CannedResponse.shortcut)))).scalars().all()
    return {"agents": agents, "teams": teams, "canned": canned, "names": {a.id: a.name for a in agents},
            "team_names": {t.id: t.name for t in teams}}


async def inbox_page(request: web.Request) -> web.Response:
    """The three-pane inbox; `/conversations/{id}` opens one conversation in it."""
    found = await require_session(request)
    context = base_context(request, found)
    if not found.scope.sees_conversations:
        return aiohttp_jinja2.render_template("private.html", request, context)
    conversation_id = path_id(request) if "id" in request.match_info else None
    async with request.app[RUNTIME].factory() as session:
        context |= await _list_context(session, request, found) | await _directory(session)
        if conversation_id is not None:
            context |= await _conversation_context(session, request, found, conversation_id)
    return aiohttp_jinja2.render_template("inbox.html", request, context)


async def list_partial(request: web.Request) -> web.Response:
    """The conversation list and counts, re-fetched by the page on live events."""
    found = await require_session(request)
    if not found.scope.sees_conversations:
        raise web.HTTPForbidden()
    async with request.app[RUNTIME].factory() as session:
        context = base_context(request, found) | await _list_context(session, request, found)
    return aiohttp_jinja2.render_template("_list.html", request, context)


async def conversation_partial(request: web.Request) -> web.Response:
    """The conversation and customer panes, re-fetched after an action or a live event."""
    found = await require_session(request)
    async with request.app[RUNTIME].factory() as session:
        context = base_context(request, found) | await _directory(session)
        context |= await _conversation_context(session, request, found, path_id(request))
    return aiohttp_jinja2.render_template("_panes.html", request, context)


async def message_html(request: web.Request) -> web.Response:
    """A mail's HTML, sanitised again here and served under a sandboxing CSP for a sandboxed iframe."""
    found = await require_session(request)
    async with request.app[RUNTIME].factory() as session:
        message = await session.get(Message, path_id(request))
        visible = message is not None and await details.load_conversation(
            session, found.scope, message.conversation_id) is not None
    if message is None or not visible or not message.body_html:
        raise web.HTTPNotFound(text="no such message")
    clean = nh3.clean(message.body_html, url_schemes={"http", "https", "mailto", "cid"},
                      link_rel="noopener noreferrer nofollow")
    page = f'<!doctype html><html><head><meta charset="utf-8"><base target="_blank"></head><body>{clean}</body></html>'
    return web.Response(text=page, content_type="text/html",
                        headers={"Content-Security-Policy": MAIL_CSP, "Cache-Control": "private, no-store"})



def setup_page_routes(app: web.Application) -> None:
    """The inbox's pages and partials, and its static files."""
    r = app.router
    r.add_get("/", inbox_page, name="page_inbox")
    r.add_get("/login", login_form, name="page_login")
    r.add_post("/login", login_submit, name="page_login_submit")
    r.add_post("/logout", logout, name="page_logout")
    r.add_get(r"/conversations/{id:\d+}", inbox_page, name="page_conversation")
    r.add_get("/ui/list", list_partial, name="ui_list")
    r.add_get(r"/ui/conversations/{id:\d+}", conversation_partial, name="ui_conversation")
    r.add_get(r"/ui/messages/{id:\d+}/html", message_html, name="ui_message_html")
    r.add_static("/static/", Path(__file__).parent / "static", name="static", append_version=True)
