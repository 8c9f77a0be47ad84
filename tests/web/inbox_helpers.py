"""Shared helpers for the shared-inbox API tests: tokens per role, teams, JSON calls, SSE frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from hub.core.envelopes import Inbound
from hub.core.ingest import IngestResult, ingest_once
from hub.keys import RUNTIME
from hub.runtime import Runtime
from hub.store.models import Team, TeamMember
from tests.conftest import make_agent

Client = TestClient[web.Request, web.Application]


def rt(client: Client) -> Runtime:
    app = client.app
    assert app is not None
    return app[RUNTIME]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(client: Client, method: str, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    response = await client.request(method, path, headers=auth(token) if token else {}, **kw)
    return response.status, await response.json()


async def staff(client: Client) -> dict[str, tuple[int, str]]:
    """admin, agent, marketer, and `other`: an agent in another team."""
    out = {}
    for name, role in (("admin", "admin"), ("agent", "agent"), ("marketer", "marketer"), ("other", "agent")):
        out[name] = await make_agent(rt(client), f"{name}@hotel.test", role)
    return out


async def team(client: Client, name: str, *agent_ids: int) -> int:
    async with rt(client).factory() as session, session.begin():
        row = Team(name=name)
        session.add(row)
        await session.flush()
        assert row.id is not None
        session.add_all([TeamMember(team_id=row.id, agent_id=a) for a in agent_ids])
        return row.id


async def ingest(client: Client, item: Inbound) -> IngestResult:
    return await ingest_once(rt(client).factory, item, rt(client).ingest_context)


async def next_frame(response: ClientResponse, within: float = 5.0) -> dict[str, str]:
    """Read one SSE frame (fields by name), skipping comments and the retry hint."""
    fields: dict[str, str] = {}
    while True:
        raw = await asyncio.wait_for(response.content.readline(), within)
        if not raw:
            raise EOFError("stream ended")
        line = raw.decode().rstrip("\n")
        if line == "":
            if "data" in fields:
                return fields
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value


def data(frame: dict[str, str]) -> Any:
    return json.loads(frame["data"])
