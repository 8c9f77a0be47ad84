"""Full-text search over the messages of conversations the agent may see."""

from __future__ import annotations

from aiohttp import web

from hub.core.timeline import BadCursor
from hub.keys import RUNTIME
from hub.web import schemas, search
from hub.web.auth import current_scope, requires
from hub.web.errors import bad_request
from hub.web.openapi import doc
from hub.web.params import parse_query


@doc("Search messages (all words; the last one as a prefix), newest first", query=schemas.SearchQuery,
     response=schemas.SearchPage, tag="search")
@requires("admin", "agent")
async def search_messages(request: web.Request) -> web.Response:
    query, scope = parse_query(request, schemas.SearchQuery), await current_scope(request)
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session:
        try:
            page = await search.search_page(session, runtime.engine.dialect.name, scope, query)
        except BadCursor as exc:
            raise bad_request(str(exc), "before") from None
    return web.json_response(page.model_dump(mode="json"))
