"""The shared inbox API: views, counts, filters, search, detail, actions, bulk, canned, roles, audit."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from hub.store.models import AuditEvent, Complaint, Conversation
from tests.support.builders import T0, email, sms
from tests.web.inbox_helpers import Client, call, ingest, rt, staff, team


async def _assign_team(client: Client, conversation_id: int, team_id: int) -> None:
    async with rt(client).factory() as session, session.begin():
        row = await session.get(Conversation, conversation_id)
        assert row is not None
        row.team_id = team_id


async def test_every_new_endpoint_needs_a_token(client: Client) -> None:
    for method, path in (("GET", "/api/v1/inbox/counts"), ("GET", "/api/v1/search?q=x"), ("GET", "/api/v1/canned"),
                         ("POST", "/api/v1/conversations/bulk"), ("GET", "/api/v1/events"),
                         ("PATCH", "/api/v1/conversations/1"), ("POST", "/api/v1/conversations/1/presence"),
                         ("GET", "/api/v1/conversations/1/timeline"), ("GET", "/api/v1/customers/1/panel")):
        status, body = await call(client, method, path)
        assert status == 401 and body["error"]["code"] == "unauthorized", path


async def test_marketers_see_no_conversations(client: Client) -> None:
    s = await staff(client)
    token = s["marketer"][1]
    for method, path in (("GET", "/api/v1/conversations"), ("GET", "/api/v1/inbox/counts"),
                         ("GET", "/api/v1/search?q=x"), ("GET", "/api/v1/events"), ("GET", "/api/v1/canned")):
        status, body = await call(client, method, path, token)
        assert status == 403 and body["error"]["code"] == "forbidden", path
    status, _ = await call(client, "GET", "/api/v1/customers", token)
    assert status == 200  # profiles stay available for campaigns


async def test_views_counts_and_team_visibility(client: Client) -> None:
    s = await staff(client)
    (agent_id, agent), (other_id, other), admin = s["agent"], s["other"], s["admin"][1]
    front, spa = await team(client, "Front", agent_id), await team(client, "Spa", other_id)
    a = await ingest(client, email("a@x", "a@example.com", at=T0))
    b = await ingest(client, email("b@x", "b@example.com", at=T0 + timedelta(minutes=1)))
    c = await ingest(client, sms("SMc", at=T0 + timedelta(minutes=2)))
    assert a.conversation_id and b.conversation_id and c.conversation_id
    await _assign_team(client, a.conversation_id, front)
    await _assign_team(client, b.conversation_id, spa)
    await call(client, "POST", f"/api/v1/conversations/{c.conversation_id}/assign", agent, json={"agent_id": agent_id})

    async def ids(token: str, query: str) -> list[int]:
        status, page = await call(client, "GET", f"/api/v1/conversations?{query}", token)
        assert status == 200
        return [item["id"] for item in page["items"]]

    assert await ids(agent, "view=all") == [c.conversation_id, a.conversation_id]
    assert await ids(agent, "view=mine") == [c.conversation_id]
    assert await ids(agent, "view=team") == [a.conversation_id]
    assert await ids(agent, "view=unassigned") == [a.conversation_id]
    assert await ids(other, "view=all") == [c.conversation_id, b.conversation_id]
    assert await ids(admin, "view=all") == [c.conversation_id, b.conversation_id, a.conversation_id]
    status, counts = await call(client, "GET", "/api/v1/inbox/counts", agent)
    assert status == 200 and counts == {"mine": 1, "unassigned": 1, "team": 1, "all": 2, "complaints": 0}
    status, _ = await call(client, "GET", f"/api/v1/conversations/{b.conversation_id}", agent)
    assert status == 404  # another team's conversation does not exist for this agent
    status, _ = await call(client, "POST", f"/api/v1/conversations/{b.conversation_id}/reply", agent,
                           json={"body": "hi"})
    assert status == 404


async def test_filters_status_channel_tag_priority_complaint(client: Client) -> None:
    s = await staff(client)
    token = s["agent"][1]
    mail = await ingest(client, email("f1@x", "f1@example.com", subject="Aria condizionata", at=T0))
    text = await ingest(client, sms("SMf2", at=T0 + timedelta(minutes=1)))
    assert mail.conversation_id and text.conversation_id
    status, _ = await call(client, "PATCH", f"/api/v1/conversations/{mail.conversation_id}", token,
                           json={"add_tags": ["vip", "late"], "priority": "urgent"})
    assert status == 200
    async with rt(client).factory() as session, session.begin():
        session.add(Complaint(customer_id=mail.customer_id or 0, conversation_id=mail.conversation_id, title="AC"))
    await call(client, "POST", f"/api/v1/conversations/{text.conversation_id}/status", token,
               json={"status": "pending"})
    expected = {"channel=email": [mail.conversation_id], "channel=sms": [text.conversation_id],
                "status=pending": [text.conversation_id], "tag=vip": [mail.conversation_id], "tag=nope": [],
                "priority=urgent": [mail.conversation_id], "complaint=open": [mail.conversation_id]}
    for query, wanted in expected.items():
        status, page = await call(client, "GET", f"/api/v1/conversations?{query}", token)
        assert status == 200 and [i["id"] for i in page["items"]] == wanted, query
    _, page = await call(client, "GET", "/api/v1/conversations?complaint=open", token)
    item = page["items"][0]
    assert item["complaint_open"] and item["customer_name"] == "f1@example.com" and item["preview"] == "Hi there"
    for bad in ("status=lost", "channel=fax", "priority=meh", "view=everything", "limit=0", "limit=x",
                "before=garbage", "complaint=closed", "customer_id=-1"):
        status, body = await call(client, "GET", f"/api/v1/conversations?{bad}", token)
        assert status == 400 and body["error"]["field"] == bad.split("=")[0], bad


async def test_full_text_search_finds_messages_in_visible_conversations(client: Client) -> None:
    s = await staff(client)
    agent, other_id = s["agent"][1], s["other"][0]
    spa = await team(client, "Spa", other_id)
    hit = await ingest(client, email("s1@x", "s1@example.com", subject="Doccia", body="La doccia perde acqua"))
    hidden = await ingest(client, email("s2@x", "s2@example.com", body="Anche la doccia della 12 perde"))
    await ingest(client, email("s3@x", "s3@example.com", body="Tutto bene, grazie"))
    assert hidden.conversation_id
    await _assign_team(client, hidden.conversation_id, spa)
    status, page = await call(client, "GET", "/api/v1/search?q=doccia perd", agent)
    assert status == 200 and [h["message_id"] for h in page["items"]] == [hit.message_id]
    assert "doccia" in page["items"][0]["snippet"].lower()
    status, page = await call(client, "GET", "/api/v1/search?q=doccia", s["admin"][1])
    assert len(page["items"]) == 2
    status, page = await call(client, "GET", "/api/v1/conversations?q=acqua", agent)
    assert [i["id"] for i in page["items"]] == [hit.conversation_id]
    status, page = await call(client, "GET", '/api/v1/search?q="AND OR NOT (*', agent)
    assert status == 200 and page["items"] == []  # operators are words, never a syntax error
    status, body = await call(client, "GET", "/api/v1/search", agent)
    assert status == 400 and body["error"]["field"] == "q"
    # A note added later is searchable at once: the index follows every insert.
    await call(client, "POST", f"/api/v1/conversations/{hit.conversation_id}/notes", agent,
               json={"body": "idraulico chiamato"})
    _, page = await call(client, "GET", "/api/v1/search?q=idraulico", agent)
    assert [h["direction"] for h in page["items"]] == ["note"]


async def test_search_pages_by_keyset(client: Client) -> None:
    token = (await staff(client))["agent"][1]
    for n in range(5):
        await ingest(client, email(f"p{n}@x", "p@example.com", body=f"parcheggio numero {n}",
                                   at=T0 + timedelta(minutes=n)))
    seen: list[int] = []
    before = ""
    while True:
        status, page = await call(client, "GET", f"/api/v1/search?q=parcheggio&limit=2&before={before}", token)
        assert status == 200
        seen += [h["message_id"] for h in page["items"]]
        if not (before := page["next_before"]):
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 5


async def test_detail_has_timeline_customer_panel_and_presence(client: Client) -> None:
    s = await staff(client)
    token = s["agent"][1]
    first = await ingest(client, email("d1@x", "giulia@example.com", subject="Camera", at=T0))
    second = await ingest(client, sms("SMd2", "+393471112233", at=T0 + timedelta(hours=1)))
    status, _ = await call(client, "POST", f"/api/v1/customers/{first.customer_id}/merge", token,
                           json={"source_id": second.customer_id})
    assert status == 200
    await call(client, "POST", f"/api/v1/conversations/{first.conversation_id}/presence", s["admin"][1],
               json={"state": "typing"})
    status, detail = await call(client, "GET", f"/api/v1/conversations/{first.conversation_id}", token)
    assert status == 200
    assert [m["direction"] for m in detail["messages"]] == ["in"]
    assert {i["kind"] for i in detail["customer"]["identities"]} == {"email", "phone"}
    assert [e["channel"] for e in detail["timeline"]["items"]] == ["sms", "email"]  # cross-channel, newest first
    assert detail["timeline"]["items"][0]["message"]["body_text"] == "Ciao"
    assert detail["customer"]["stage_history"][0]["to_stage"] == "prospect"
    assert detail["presence"] == [{"agent_id": s["admin"][0], "agent_name": "Admin", "state": "typing"}]
    status, page = await call(client, "GET", f"/api/v1/conversations/{first.conversation_id}/timeline?limit=1", token)
    assert status == 200 and len(page["items"]) == 1 and page["next_before"]
    status, page = await call(client, "GET", f"/api/v1/conversations/{first.conversation_id}/timeline"
                                              f"?before={page['next_before']}", token)
    assert [e["channel"] for e in page["items"]] == ["email"]
    status, panel = await call(client, "GET", f"/api/v1/customers/{first.customer_id}/panel", token)
    assert status == 200 and panel["id"] == first.customer_id
    for path in ("/api/v1/conversations/999", "/api/v1/conversations/999/timeline", "/api/v1/customers/999/panel",
                 "/api/v1/conversations/99999999999999999999"):
        status, _ = await call(client, "GET", path, token)
        assert status == 404, path


async def test_reply_by_chosen_channel_and_identity_note_tags_priority_are_audited(client: Client) -> None:
    s = await staff(client)
    token = s["agent"][1]
    first = await ingest(client, email("r1@x", "guest@example.com"))
    second = await ingest(client, sms("SMr2", "+393470000001"))
    await call(client, "POST", f"/api/v1/customers/{first.customer_id}/merge", token,
               json={"source_id": second.customer_id})
    cid = first.conversation_id
    status, out = await call(client, "POST", f"/api/v1/conversations/{cid}/reply", token,
                             json={"body": "Vi scriviamo anche via SMS", "channel": "sms", "to": "+393470000001"})
    assert status == 202 and out["channel"] == "sms" and out["recipient"] == "+393470000001"
    status, body = await call(client, "POST", f"/api/v1/conversations/{cid}/reply", token,
                              json={"body": "x", "channel": "email", "to": "someone@else.test"})
    assert status == 400 and body["error"]["field"] == "to"
    status, note = await call(client, "POST", f"/api/v1/conversations/{cid}/notes", token,
                              json={"body": "@admin@hotel.test can you call?"})
    assert status == 201 and note["direction"] == "note"
    status, updated = await call(client, "PATCH", f"/api/v1/conversations/{cid}", token,
                                 json={"tags": ["vip"], "add_tags": ["late"], "remove_tags": ["vip"],
                                       "priority": "high"})
    assert status == 200 and updated["tags"] == ["late"] and updated["priority"] == "high"
    status, body = await call(client, "PATCH", f"/api/v1/conversations/{cid}", token, json={"priority": "asap"})
    assert status == 400 and body["error"]["field"] == "priority"
    status, body = await call(client, "PATCH", f"/api/v1/conversations/{cid}", token, json={"add_tags": ["x" * 61]})
    assert status == 400 and body["error"]["field"].startswith("add_tags")
    status, body = await call(client, "POST", f"/api/v1/conversations/{cid}/notes", token, json={"body": "a\x00b"})
    assert status == 400 and "NUL" in body["error"]["message"]
    async with rt(client).factory() as session:
        actions = set((await session.execute(select(AuditEvent.action).where(
            AuditEvent.entity == "conversation", col(AuditEvent.entity_id) == cid))).scalars())
    assert {"conversation.reply", "conversation.note", "conversation.updated"} <= actions


async def test_bulk_actions_skip_what_the_agent_cannot_see(client: Client) -> None:
    s = await staff(client)
    (agent_id, token), other_id = s["agent"], s["other"][0]
    spa = await team(client, "Spa", other_id)
    ids = [(await ingest(client, email(f"b{n}@x", f"b{n}@example.com"))).conversation_id for n in range(3)]
    assert all(ids)
    await _assign_team(client, ids[2] or 0, spa)
    status, result = await call(client, "POST", "/api/v1/conversations/bulk", token,
                                json={"ids": ids, "action": "status", "status": "resolved"})
    assert status == 200 and result == {"updated": ids[:2], "skipped": ids[2:]}
    status, result = await call(client, "POST", "/api/v1/conversations/bulk", token,
                                json={"ids": ids[:2], "action": "assign", "agent_id": agent_id})
    assert status == 200 and result["updated"] == ids[:2]
    status, result = await call(client, "POST", "/api/v1/conversations/bulk", token,
                                json={"ids": ids[:2], "action": "tag", "tag": "checked"})
    _, page = await call(client, "GET", "/api/v1/conversations?view=mine&status=resolved&tag=checked", token)
    assert [i["id"] for i in page["items"]] == sorted((i or 0 for i in ids[:2]), reverse=True)
    for body, field in (({"ids": ids, "action": "tag"}, "tag"), ({"ids": [], "action": "tag", "tag": "x"}, "ids"),
                        ({"ids": ids, "action": "explode"}, "action"),
                        ({"ids": ids, "action": "assign", "agent_id": 999}, "agent_id")):
        status, err = await call(client, "POST", "/api/v1/conversations/bulk", token, json=body)
        assert status == 400 and err["error"]["field"] == field, body


async def test_canned_responses_fill_variables(client: Client) -> None:
    s = await staff(client)
    token = s["agent"][1]
    conv = await ingest(client, email("c1@x", "giulia@example.com"))
    await call(client, "PATCH", f"/api/v1/customers/{conv.customer_id}", token, json={"display_name": "Giulia Bianchi"})
    status, row = await call(client, "POST", "/api/v1/canned", token, json={
        "shortcut": "grazie", "title": "Thanks", "language": "it",
        "body": "Gentile {{ customer.first_name }}, grazie! {{agent.name}} {{ booking.room }}"})
    assert status == 201
    status, body = await call(client, "POST", "/api/v1/canned", token,
                              json={"shortcut": "grazie", "language": "it", "body": "again"})
    assert status == 409 and body["error"]["field"] == "shortcut"
    status, body = await call(client, "POST", "/api/v1/canned", token, json={"shortcut": "Bad Name", "body": "x"})
    assert status == 400 and body["error"]["field"] == "shortcut"
    status, listed = await call(client, "GET", "/api/v1/canned", token)
    assert [c["shortcut"] for c in listed["items"]] == ["grazie"]
    status, out = await call(client, "POST", f"/api/v1/canned/{row['id']}/render", token,
                             json={"conversation_id": conv.conversation_id})
    assert status == 200 and out == {"text": "Gentile Giulia, grazie! Agent {{ booking.room }}",
                                     "missing": ["booking.room"]}
    status, _ = await call(client, "POST", "/api/v1/canned/999/render", token,
                           json={"conversation_id": conv.conversation_id})
    assert status == 404


async def test_list_pages_stay_stable_while_messages_arrive(client: Client) -> None:
    token = (await staff(client))["agent"][1]
    for n in range(7):
        await ingest(client, email(f"st{n}@x", f"st{n}@example.com", at=T0 + timedelta(minutes=n)))
    seen: list[int] = []
    before = ""
    for round_no in range(10):
        status, page = await call(client, "GET", f"/api/v1/conversations?limit=3&before={before}", token)
        assert status == 200
        seen += [i["id"] for i in page["items"]]
        # New conversations, and new activity on one already listed, must not shift the pages still to come.
        await ingest(client, email(f"late{round_no}@x", f"late{round_no}@example.com",
                                   at=T0 + timedelta(days=1, minutes=round_no)))
        await ingest(client, email(f"again{round_no}@x", "st6@example.com", subject="Hello",
                                   at=T0 + timedelta(days=2, minutes=round_no)))
        if not (before := page["next_before"]):
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]  # no repeats, none skipped
