"""The admins' rule editor page: errors inline by JSON path, valid rules saved, others kept out."""

from __future__ import annotations

import json
import re

from sqlmodel import select

from hub.store.models import Rule
from tests.web.inbox_helpers import Client, rt, staff
from tests.web.test_pages import csrf_of, login


async def test_admin_sees_validation_errors_inline_and_saves_a_valid_rule(client: Client) -> None:
    await staff(client)
    await login(client, "admin@hotel.test")
    page = await client.get("/rules")
    assert page.status == 200 and "New rule" in await page.text()
    token = csrf_of(await page.text())
    bad = {"name": "Broken", "event": "message.received",
           "condition": {"all": [{"field": "message.nope", "op": "equals", "value": 1}]}, "actions": []}
    response = await client.post("/rules/new", data={"csrf_token": token, "rule": json.dumps(bad)})
    html = await response.text()
    assert response.status == 400 and re.search(r"<code>\$\.condition[^<]*</code>", html)
    assert "message.nope" in html  # the draft is kept in the form
    syntax = await client.post("/rules/new", data={"csrf_token": token, "rule": "{not json"})
    assert syntax.status == 400 and "line 1" in await syntax.text()
    good = {"name": "Complaints", "event": "message.received", "enabled": True,
            "condition": {"field": "message.body", "op": "contains_any", "value": ["reclamo"]},
            "actions": [{"type": "set_priority", "priority": "high"}]}
    saved = await client.post("/rules/new", data={"csrf_token": token, "rule": json.dumps(good)})
    assert saved.status == 200 and saved.url.path == "/rules"
    async with rt(client).factory() as session:
        rule = (await session.execute(select(Rule).where(Rule.name == "Complaints"))).scalar_one()
    assert rule.enabled and rule.actions[0]["priority"] == "high"


async def test_the_editor_is_for_admins_and_needs_the_form_token(client: Client) -> None:
    await staff(client)
    await login(client, "agent@hotel.test")
    assert (await client.get("/rules")).status == 403
    await client.post("/logout", data={"csrf_token": csrf_of(await (await client.get("/")).text())})
    await login(client, "admin@hotel.test")
    forged = await client.post("/rules/new", data={"csrf_token": "forged", "rule": "{}"})
    assert forged.status == 403
