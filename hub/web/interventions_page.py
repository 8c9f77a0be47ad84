"""The "my interventions" page: the agent's and their teams' open tasks, soonest due first, overdue marked."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from hub.keys import RUNTIME
from hub.store.types import utcnow
from hub.web import pages
from hub.web.api_complaints import my_interventions


async def interventions_page(request: web.Request) -> web.Response:
    """GET /interventions: unfinished work for the signed-in agent (links lead to the conversation)."""
    found = await pages.require_session(request)
    if found.agent.role not in ("admin", "agent"):
        raise web.HTTPForbidden(text="interventions are for agents")
    async with request.app[RUNTIME].factory() as session:
        items = await my_interventions(session, found.agent, None, 200)
    now = utcnow()
    rows = [(i, bool(i.due_at and i.due_at < now)) for i in items]
    context = pages.base_context(request, found) | {"rows": rows}
    context["logout_csrf"] = context.pop("csrf")  # no inbox script here (it starts when it finds `csrf`)
    return aiohttp_jinja2.render_template("interventions.html", request, context)


def setup_intervention_pages(app: web.Application) -> None:
    app.router.add_get("/interventions", interventions_page, name="page_interventions")
