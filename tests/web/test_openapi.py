"""The OpenAPI document is generated from the views' models, and schemathesis finds no 5xx against it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import hypothesis
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode

from hub.app import create_app
from hub.keys import RUNTIME
from hub.settings import Settings
from tests.conftest import make_agent
from tests.support.builders import email, sms
from tests.web.inbox_helpers import Client, call

SKIP = {("GET", "/api/v1/events")}  # an endless stream; covered by tests/web/test_live.py
EXAMPLES = 25


async def test_document_lists_every_inbox_operation_with_models(client: Client) -> None:
    status, doc = await call(client, "GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path, method in (("/api/v1/conversations", "get"), ("/api/v1/conversations/{id}/reply", "post"),
                         ("/api/v1/conversations/bulk", "post"), ("/api/v1/search", "get"),
                         ("/api/v1/events", "get"), ("/api/v1/conversations/{id}/presence", "post"),
                         ("/api/v1/canned/{id}/render", "post"), ("/api/v1/customers/{id}/merge", "post")):
        assert method in paths[path], (path, method)
    reply = paths["/api/v1/conversations/{id}/reply"]["post"]
    assert reply["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ReplyBody"}
    assert set(reply["responses"]) >= {"202", "400", "401", "403", "404"}
    query = {p["name"] for p in paths["/api/v1/conversations"]["get"]["parameters"]}
    assert {"view", "status", "channel", "tag", "priority", "complaint", "q", "before", "limit"} <= query
    assert doc["components"]["schemas"]["ReplyBody"]["additionalProperties"] is False
    assert paths["/api/v1/auth/login"]["post"]["security"] == []


def _fuzz(schema: Any, base_url: str, token: str) -> Counter[int]:
    """Run positive and negative examples against every operation; collect status codes, fail on 5xx."""
    seen: Counter[int] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                                 suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                seen[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
                                    f"{response.status_code} {response.text[:200]}")

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body): the positive run covers it
    assert not failures, "\n".join(failures[:10])
    return seen


@pytest.mark.slow
async def test_schemathesis_finds_no_server_errors(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        runtime = app[RUNTIME]
        _, token = await make_agent(runtime, "fuzz@hotel.test", "admin")
        from hub.core.ingest import ingest_once

        for item in (email("fz1@x", "fz@example.com"), sms("SMfz2")):
            await ingest_once(runtime.factory, item, runtime.ingest_context)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        async with __import__("aiohttp").ClientSession() as http:
            doc = await (await http.get(f"{base}/api/v1/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(doc)
        seen = await asyncio.to_thread(_fuzz, schema, base, token)
        assert seen[400] > 0 and (seen[200] + seen[201] + seen[202]) > 0
    finally:
        await runner.cleanup()
