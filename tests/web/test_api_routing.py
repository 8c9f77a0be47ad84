"""Rules, complaints, interventions, cases and surveys over HTTP, with the 400/403/404/409 paths."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from hub.keys import RUNTIME
from hub.runtime import Runtime
from hub.store.models import Message, Survey
from tests.conftest import make_agent
from tests.integration.routing.conftest import guest, make_hotel, receive
from tests.support.builders import email

Client = TestClient  # type: ignore[type-arg]
RULE = {"name": "complaints", "event": "message.received",
        "condition": {"field": "message.body", "op": "contains_any", "value": ["reclamo", "broken"]},
        "actions": [{"type": "open_complaint", "severity": "high"},
                    {"type": "assign", "team": "Reception"}]}


def rt(client: Client) -> Runtime:
    return client.server.app[RUNTIME]


async def call(client: Client, method: str, path: str, token: str, **kw: Any) -> tuple[int, Any]:
    response = await client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)
    return response.status, (await response.json() if response.status != 204 else None)


async def staff(client: Client) -> tuple[str, str, str]:
    _, admin = await make_agent(rt(client), "admin@hotel.test", "admin")
    _, agent = await make_agent(rt(client), "agent@hotel.test", "agent")
    _, marketer = await make_agent(rt(client), "mara@hotel.test", "marketer")
    return admin, agent, marketer


async def test_rules_crud_validation_and_roles(client: Client) -> None:
    admin, agent, _ = await staff(client)
    assert (await call(client, "POST", "/api/v1/rules", agent, json=RULE))[0] == 403
    status, body = await call(client, "POST", "/api/v1/rules", admin, json={**RULE, "condition": {
        "field": "message.body", "op": "shouts", "value": 1}})
    assert status == 400 and body["error"]["field"] == "$.condition.op"
    status, body = await call(client, "POST", "/api/v1/rules", admin, json={**RULE, "colour": "red"})
    assert status == 400 and body["error"]["field"] == "colour"
    status, body = await call(client, "POST", "/api/v1/rules", admin, json={**RULE, "actions": [
        {"type": "webhook", "url": "file:///etc/passwd"}]})
    assert status == 400 and body["error"]["field"] == "$.actions[0].url"
    status, created = await call(client, "POST", "/api/v1/rules", admin, json=RULE)
    assert status == 201
    path = f"/api/v1/rules/{created['id']}"
    status, updated = await call(client, "PUT", path, admin, json={**RULE, "enabled": False})
    assert status == 200 and updated["enabled"] is False
    assert (await call(client, "GET", "/api/v1/rules", admin))[1]["items"][0]["id"] == created["id"]
    assert (await call(client, "DELETE", path, admin))[0] == 204
    assert (await call(client, "GET", path, admin))[0] == 404
    status, catalog = await call(client, "GET", "/api/v1/rules/catalog", agent)
    assert status == 200 and {"assign", "webhook", "open_complaint"} <= {a["name"] for a in catalog["actions"]}


async def test_dry_run_explains_on_text_and_stored_message(client: Client) -> None:
    admin, agent, marketer = await staff(client)
    await make_hotel(rt(client), rules=False)
    assert (await call(client, "POST", "/api/v1/rules", admin, json=RULE))[0] == 201
    status, body = await call(client, "POST", "/api/v1/rules/dry-run", agent, json={"text": "Un reclamo!"})
    assert status == 200 and body["rules"][0]["hit"] is True
    leaf = body["rules"][0]["explanation"]
    assert leaf["field"] == "message.body" and leaf["actual"] == "Un reclamo!"
    assert [a["type"] for a in body["actions"]] == ["open_complaint", "assign"]
    result = await receive(rt(client), email("d1@example.com", body="all fine"))
    status, body = await call(client, "POST", "/api/v1/rules/dry-run", agent, json={"message_id": result.message_id})
    assert status == 200 and body["rules"][0]["hit"] is False and body["actions"] == []
    assert (await call(client, "POST", "/api/v1/rules/dry-run", agent, json={"message_id": 999999}))[0] == 404
    assert (await call(client, "POST", "/api/v1/rules/dry-run", agent, json={}))[0] == 400
    assert (await call(client, "POST", "/api/v1/rules/dry-run", marketer, json={"text": "x"}))[0] == 403


async def test_complaints_interventions_and_cases(client: Client) -> None:
    admin, agent, _ = await staff(client)
    runtime = rt(client)
    hotel = await make_hotel(runtime, rules=False)
    customer_id = await guest(runtime, email="giulia@example.com")
    status, body = await call(client, "POST", "/api/v1/complaints", agent, json={"customer_id": 999999, "title": "x"})
    assert status == 400 and body["error"]["field"] == "customer_id"
    status, complaint = await call(client, "POST", "/api/v1/complaints", agent, json={
        "customer_id": customer_id, "title": "Noisy room", "severity": "high"})
    assert status == 201 and complaint["case_id"] is not None
    cid = complaint["id"]
    status, item = await call(client, "POST", f"/api/v1/complaints/{cid}/interventions", agent, json={
        "description": "Move the guest", "team_id": hotel.teams["Reception"]})
    assert status == 201
    # Resolving with open work: 409 for an agent, allowed for an admin with a reason (checked below).
    status, body = await call(client, "POST", f"/api/v1/complaints/{cid}/status", agent, json={"status": "resolved"})
    assert status == 409 and "not done" in body["error"]["message"]
    # The agent is not in Reception: the intervention is not theirs.
    iid = item["id"]
    assert (await call(client, "POST", f"/api/v1/interventions/{iid}/status", agent, json={"status": "done"}))[0] == 403
    status, done = await call(client, "POST", f"/api/v1/interventions/{iid}/status", admin, json={
        "status": "done", "note": "moved to 214"})
    assert status == 200 and done["notes"][0]["text"] == "moved to 214"
    status, body = await call(client, "POST", f"/api/v1/interventions/{iid}/status", admin, json={"status": "doing"})
    assert status == 409 and body["error"]["allowed"] == []
    status, got = await call(client, "GET", f"/api/v1/complaints/{cid}", agent)
    assert got["status"] == "resolved" and len(got["interventions"]) == 1
    status, page = await call(client, "GET", "/api/v1/complaints?status=resolved", agent)
    assert [c["id"] for c in page["items"]] == [cid]
    assert (await call(client, "GET", "/api/v1/complaints?status=bogus", agent))[0] == 400
    assert (await call(client, "GET", "/api/v1/complaints/999999", agent))[0] == 404

    status, case = await call(client, "GET", f"/api/v1/cases/{complaint['case_id']}", agent)
    assert status == 200 and case["state"] == "services_ok"  # complaint opened and resolved
    status, body = await call(client, "POST", f"/api/v1/cases/{case['id']}/transition", agent,
                              json={"to": "closed_success"})
    assert status == 409 and body["error"]["allowed"] == ["complaint", "departure_survey"]


async def test_my_interventions_and_a_survey_by_web_form(client: Client) -> None:
    admin, _, _ = await staff(client)
    runtime = rt(client)
    await make_hotel(runtime)
    _, elena = await make_agent(runtime, "elena2@hotel.test", "agent")
    customer_id = await guest(runtime, email="giulia@example.com")
    await receive(runtime, email("w1@example.com", "giulia@example.com", subject="Reclamo", body="Camera sporca"))
    status, mine = await call(client, "GET", "/api/v1/interventions", elena)
    assert status == 200 and mine["items"] == []
    _, housekeeping_token = await _login_as(client, "elena@hotel.test")
    status, mine = await call(client, "GET", "/api/v1/interventions", housekeeping_token)
    assert [i["description"] for i in mine["items"]] == ["Check the room and make it right"]

    status, case = await call(client, "POST", "/api/v1/cases", admin, json={"customer_id": customer_id,
                                                                          "workflow": "nope"})
    assert status == 400 and case["error"]["field"] == "workflow"
    async with runtime.factory() as session:
        from hub.store.models import Case
        case_id = (await session.execute(select(Case.id))).scalar_one()
    status, moved = await call(client, "POST", f"/api/v1/cases/{case_id}/transition", admin,
                               json={"to": "departure_survey"})
    assert status == 200 and moved["state"] == "departure_survey"
    async with runtime.factory() as session:
        survey = (await session.execute(select(Survey))).scalar_one()
        message = await session.get(Message, survey.message_id)
    assert survey.channel == "email" and message is not None
    link = re.search(r"/s/[\w.-]+", message.body_text)
    assert link is not None
    page = await client.get(link.group(0))
    assert page.status == 200 and "How clean was your room?" in await page.text()
    assert (await client.get("/s/1.forged")).status == 404
    bad = await client.post(link.group(0), data={"q0": "5"})
    assert bad.status == 400
    good = await client.post(link.group(0), data={"q0": "5", "q1": "5", "q2": "4"})
    assert good.status == 200
    status, case = await call(client, "GET", f"/api/v1/cases/{case_id}", admin)
    assert case["state"] == "closed_with_complaints"  # a complaint during the stay
    status, survey_json = await call(client, "GET", f"/api/v1/surveys/{survey.id}", admin)
    assert survey_json["answers"] == [5, 5, 4] and survey_json["status"] == "answered"


async def _login_as(client: Client, email_address: str) -> tuple[int, str]:
    from hub import accounts

    async with rt(client).factory() as session, session.begin():
        agent = await accounts.agent_by_email(session, email_address)
        assert agent is not None and agent.id is not None
        return agent.id, await accounts.create_token(session, agent)
