"""The JSON API over HTTP: auth, roles, validation errors, customers, conversations, replies."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from hub.core.ingest import ingest_once
from hub.keys import RUNTIME
from hub.runtime import Runtime, inprocess
from tests.conftest import make_agent
from tests.support.builders import email, sms

Client = TestClient  # type: ignore[type-arg]


def rt(client: Client) -> Runtime:
    return client.server.app[RUNTIME]


async def tokens(client: Client) -> dict[str, str]:
    out = {}
    for role in ("admin", "agent", "marketer"):
        _, token = await make_agent(rt(client), f"{role}@hotel.test", role)
        out[role] = token
    return out


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(client: Client, method: str, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    response = await client.request(method, path, headers=auth(token) if token else {}, **kw)
    return response.status, await response.json()


async def test_no_token_is_401_with_a_json_body(client: Client) -> None:
    status, body = await call(client, "GET", "/api/v1/customers")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await call(client, "GET", "/api/v1/customers", "hub_not-a-real-token")
    assert status == 401 and "invalid" in body["error"]["message"]


async def test_wrong_role_is_403_naming_the_needed_role(client: Client) -> None:
    t = await tokens(client)
    status, body = await call(client, "GET", "/api/v1/agents", t["agent"])
    assert status == 403 and "admin" in body["error"]["message"]
    status, _ = await call(client, "GET", "/api/v1/conversations", t["marketer"])
    assert status == 403
    status, _ = await call(client, "GET", "/api/v1/agents", t["admin"])
    assert status == 200


async def test_bad_json_and_unknown_fields_are_400_naming_the_field(client: Client) -> None:
    t = await tokens(client)
    status, body = await call(client, "POST", "/api/v1/customers", t["agent"], data=b"{not json")
    assert status == 400 and "JSON" in body["error"]["message"]
    status, body = await call(client, "POST", "/api/v1/customers", t["agent"], json={"display_name": "A", "colour": 1})
    assert status == 400 and body["error"]["field"] == "colour"
    status, body = await call(client, "POST", "/api/v1/customers", t["agent"],
                              json={"identities": [{"kind": "phone", "value": "12"}]})
    assert status == 400 and body["error"]["field"] == "identities" and "phone" in body["error"]["message"]
    status, body = await call(client, "GET", "/api/v1/customers?limit=abc", t["agent"])
    assert status == 400 and body["error"]["field"] == "limit"
    status, body = await call(client, "GET", "/api/v1/customers/999", t["agent"])
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_password_login_gives_a_working_token(client: Client) -> None:
    await tokens(client)
    status, body = await call(client, "POST", "/api/v1/auth/login",
                              json={"email": "Agent@hotel.test", "password": "correct-horse-9"})
    assert status == 200 and body["agent"]["role"] == "agent"
    status, me = await call(client, "GET", "/api/v1/me", body["token"])
    assert status == 200 and me["email"] == "agent@hotel.test"
    status, _ = await call(client, "POST", "/api/v1/auth/login", json={"email": "agent@hotel.test", "password": "x"})
    assert status == 401


async def test_customer_create_search_update_and_duplicate_identity(client: Client) -> None:
    t = await tokens(client)
    status, created = await call(client, "POST", "/api/v1/customers", t["agent"], json={
        "display_name": "Giulia Bianchi", "identities": [{"kind": "email", "value": "Giulia@Example.com"},
                                                         {"kind": "phone", "value": "347 111 2233"}]})
    assert status == 201 and {i["value"] for i in created["identities"]} == {"giulia@example.com", "+393471112233"}
    status, body = await call(client, "POST", "/api/v1/customers", t["agent"],
                              json={"identities": [{"kind": "email", "value": "giulia@example.com"}]})
    assert status == 409 and body["error"]["field"] == "identities"
    status, found = await call(client, "GET", "/api/v1/customers?q=347111", t["marketer"])
    assert status == 200 and [c["id"] for c in found["items"]] == [created["id"]]
    status, updated = await call(client, "PATCH", f"/api/v1/customers/{created['id']}", t["agent"],
                                 json={"lifecycle_stage": "key", "tags": ["vip"]})
    assert status == 200 and updated["lifecycle_stage"] == "key" and updated["tags"] == ["vip"]
    status, body = await call(client, "PATCH", f"/api/v1/customers/{created['id']}", t["agent"],
                              json={"lifecycle_stage": "gold"})
    assert status == 400 and body["error"]["field"] == "lifecycle_stage"


async def test_customer_list_pages_by_keyset(client: Client) -> None:
    t = await tokens(client)
    for n in range(5):
        await ingest_once(rt(client).factory, sms(f"SMp{n}", f"+39347111220{n}"), rt(client).ingest_context)
    ids: list[int] = []
    after = 0
    while after is not None:
        _, page = await call(client, "GET", f"/api/v1/customers?limit=2&after={after}", t["agent"])
        ids += [c["id"] for c in page["items"]]
        after = page["next_after"]
    assert ids == [1, 2, 3, 4, 5]


async def test_merge_over_the_api_keeps_the_timeline(client: Client) -> None:
    t = await tokens(client)
    a = await ingest_once(rt(client).factory, email("a@x", "guest@example.com"), rt(client).ingest_context)
    b = await ingest_once(rt(client).factory, sms("SMb"), rt(client).ingest_context)
    status, merged = await call(client, "POST", f"/api/v1/customers/{a.customer_id}/merge", t["agent"],
                                json={"source_id": b.customer_id})
    assert status == 200 and len(merged["identities"]) == 2
    status, timeline = await call(client, "GET", f"/api/v1/customers/{a.customer_id}/timeline", t["agent"])
    assert status == 200 and len(timeline["items"]) == 2
    status, _ = await call(client, "GET", f"/api/v1/customers/{b.customer_id}", t["agent"])
    assert status == 404
    status, body = await call(client, "POST", f"/api/v1/customers/{a.customer_id}/merge", t["agent"],
                              json={"source_id": a.customer_id})
    assert status == 400 and body["error"]["field"] == "source_id"


async def test_conversation_flow_status_assign_note_reply(client: Client) -> None:
    t = await tokens(client)
    agent_id, _ = await make_agent(rt(client), "sara@hotel.test", "agent")
    ingested = await ingest_once(rt(client).factory, sms("SMc", body="Doccia rotta"), rt(client).ingest_context)
    cid = ingested.conversation_id
    status, listed = await call(client, "GET", "/api/v1/conversations?status=open&assignee=none", t["agent"])
    assert status == 200 and [c["id"] for c in listed["items"]] == [cid]
    status, body = await call(client, "POST", f"/api/v1/conversations/{cid}/assign", t["agent"],
                              json={"agent_id": agent_id})
    assert status == 200 and body["assignee_id"] == agent_id
    status, body = await call(client, "POST", f"/api/v1/conversations/{cid}/assign", t["agent"], json={"agent_id": 999})
    assert status == 400 and body["error"]["field"] == "agent_id"
    status, note = await call(client, "POST", f"/api/v1/conversations/{cid}/notes", t["agent"],
                              json={"body": "@luca check the shower"})
    assert status == 201 and note["direction"] == "note"
    status, reply = await call(client, "POST", f"/api/v1/conversations/{cid}/reply", t["agent"],
                               json={"body": "Arriviamo subito"})
    assert status == 202 and reply["delivery_status"] == "queued" and reply["recipient"] == "+393471112233"
    status, body = await call(client, "POST", f"/api/v1/conversations/{cid}/reply", t["agent"],
                              json={"body": "x", "channel": "email"})
    assert status == 400 and body["error"]["field"] == "channel"
    status, body = await call(client, "POST", f"/api/v1/conversations/{cid}/status", t["agent"],
                              json={"status": "snoozed"})
    assert status == 400 and body["error"]["field"] == "snoozed_until"
    status, body = await call(client, "POST", f"/api/v1/conversations/{cid}/status", t["agent"],
                              json={"status": "resolved"})
    assert status == 200 and body["status"] == "resolved"
    status, detail = await call(client, "GET", f"/api/v1/conversations/{cid}", t["agent"])
    assert [m["direction"] for m in detail["messages"]] == ["in", "note", "out"]
    queue = inprocess(rt(client))
    assert queue is not None


async def test_conversation_list_pages_by_activity_without_repeats(client: Client) -> None:
    t = await tokens(client)
    from datetime import timedelta

    from tests.support.builders import T0
    for n in range(5):
        await ingest_once(rt(client).factory, email(f"c{n}@x", f"g{n}@example.com", at=T0 + timedelta(hours=n)),
                          rt(client).ingest_context)
    seen: list[int] = []
    cursor = ""
    for _ in range(5):
        _, page = await call(client, "GET", f"/api/v1/conversations?limit=2&before={cursor}", t["agent"])
        seen += [c["id"] for c in page["items"]]
        if not (cursor := page["next_before"]):
            break
        await ingest_once(rt(client).factory, email(f"new{len(seen)}@x", "late@example.com",
                                                    at=T0 + timedelta(days=1, minutes=len(seen))),
                          rt(client).ingest_context)
    assert seen == [5, 4, 3, 2, 1]


async def test_health_reports_the_database(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["checks"] == {"database": "ok"}
