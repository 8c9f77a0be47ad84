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


async def test_my_interventions_page_and_the_sla_line_in_a_conversation(client: Client) -> None:
    from datetime import timedelta

    from hub.core.ingest import ingest_once
    from hub.store.models import Intervention
    from hub.store.types import utcnow
    from tests.support.builders import sms

    ids = await staff(client)
    agent_id = ids["agent"][0]
    result = await ingest_once(rt(client).factory, sms("SMsla", body="Doccia rotta"), rt(client).ingest_context)
    async with rt(client).factory() as session, session.begin():
        session.add(Intervention(assignee_agent_id=agent_id, description="Fix the shower in 214",
                                 due_at=utcnow() - timedelta(hours=1)))
        session.add(Intervention(assignee_agent_id=ids["other"][0], description="Someone else's task"))
    await login(client, "agent@hotel.test")
    page = await client.get("/interventions")
    html = await page.text()
    assert page.status == 200 and "Fix the shower in 214" in html and "overdue" in html
    assert "Someone else" not in html
    inbox = await client.get(f"/conversations/{result.conversation_id}")
    assert 'href="/interventions"' in await inbox.text()
    pane = await client.get(f"/ui/conversations/{result.conversation_id}")
    assert pane.status == 200 and 'id="sla"' in await pane.text() and "first response" in await pane.text()
