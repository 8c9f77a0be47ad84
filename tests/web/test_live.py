"""Live updates: SSE per agent with Last-Event-ID resume, team filtering, presence, the gap-aware poller."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.settings import Settings
from hub.store.engine import make_engine, make_session_factory
from hub.store.migrate import upgrade
from hub.store.models import DomainEvent
from hub.web.presence import Notice, RedisPresence
from hub.web.sse import EventBroker
from tests.support.builders import email, sms
from tests.web.inbox_helpers import Client, auth, data, ingest, next_frame, staff, team


async def _next_of(response: object, wanted: str, within: float = 5.0) -> dict[str, str]:
    deadline = time.monotonic() + within
    while True:
        frame = await next_frame(response, max(deadline - time.monotonic(), 0.1))  # type: ignore[arg-type]
        if frame.get("event") == wanted:
            return frame


async def test_stream_delivers_and_resumes_with_last_event_id(client: Client) -> None:
    token = (await staff(client))["agent"][1]
    stream = await client.get("/api/v1/events", headers=auth(token))
    assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
    first = await ingest(client, email("live1@x", "g@example.com"))
    frame = await _next_of(stream, "message.received")
    assert data(frame)["conversation_id"] == first.conversation_id
    last_id = frame["id"]
    stream.close()
    missed = [await ingest(client, sms(f"SMlive{n}", body=f"n{n}")) for n in range(3)]
    resumed = await client.get("/api/v1/events", headers={**auth(token), "Last-Event-ID": last_id})
    got: list[int] = []
    while len(got) < 3:
        frame = await _next_of(resumed, "message.received")
        got.append(data(frame)["payload"]["message_id"])
        assert int(frame["id"]) > int(last_id)
    assert got == [m.message_id for m in missed]
    resumed.close()
    status = (await client.get("/api/v1/events", headers={**auth(token), "Last-Event-ID": "abc"})).status
    assert status == 400


async def test_events_of_other_teams_are_not_sent(client: Client) -> None:
    s = await staff(client)
    spa = await team(client, "Spa", s["other"][0])
    mine = await client.get("/api/v1/events", headers=auth(s["agent"][1]))
    theirs = await client.get("/api/v1/events", headers=auth(s["other"][1]))
    conv = await ingest(client, email("t1@x", "t@example.com"))
    await _next_of(mine, "message.received")
    await _next_of(theirs, "message.received")
    status = (await client.post(f"/api/v1/conversations/{conv.conversation_id}/assign", headers=auth(s["admin"][1]),
                                json={"team_id": spa})).status
    assert status == 200
    await _next_of(theirs, "conversation.assigned")
    await client.post(f"/api/v1/conversations/{conv.conversation_id}/notes", headers=auth(s["admin"][1]),
                      json={"body": "spa only"})
    assert data(await _next_of(theirs, "note.added"))["team_id"] == spa
    frame = await _next_of(mine, "conversation.assigned")  # the hand-over itself reaches the old owners
    with pytest.raises(TimeoutError):
        await _next_of(mine, "note.added", within=1.0)
    assert data(frame)["team_id"] == spa
    handover = data(frame)["payload"]
    assert (handover["team_id"], handover["previous"]["agent_id"]) == (spa, None)
    assert handover["previous"]["team_id"] != spa
    mine.close()
    theirs.close()


async def test_collision_notices_reach_other_agents_only(client: Client) -> None:
    s = await staff(client)
    conv = await ingest(client, email("p1@x", "p@example.com"))
    watcher = await client.get("/api/v1/events", headers=auth(s["agent"][1]))
    typist = await client.get("/api/v1/events", headers=auth(s["admin"][1]))
    response = await client.post(f"/api/v1/conversations/{conv.conversation_id}/presence",
                                 headers=auth(s["admin"][1]), json={"state": "typing"})
    assert response.status == 200
    notice = data(await _next_of(watcher, "presence"))
    assert (notice["agent_name"], notice["state"], notice["conversation_id"]) == ("Admin", "typing",
                                                                                  conv.conversation_id)
    with pytest.raises(TimeoutError):
        await _next_of(typist, "presence", within=0.8)
    response = await client.post(f"/api/v1/conversations/{conv.conversation_id}/presence",
                                 headers=auth(s["admin"][1]), json={"state": "dancing"})
    assert response.status == 400
    watcher.close()
    typist.close()


@pytest.mark.postgres
async def test_poller_catches_an_event_committed_after_a_higher_id(settings: Settings) -> None:
    if settings.is_sqlite:
        pytest.skip("SQLite writers are serialised: ids always commit in order")
    engine = make_engine(settings)
    await upgrade(engine)
    factory = make_session_factory(engine)
    broker = EventBroker(factory, gap_seconds=30)
    queue: asyncio.Queue[object] = asyncio.Queue()
    await broker.subscribe(queue)
    broker.unsubscribe(queue)  # drive the poller by hand
    slow = factory()
    await slow.begin()
    slow.add(DomainEvent(type="slow"))
    await slow.flush()  # takes the lower id, not yet committed
    async with factory() as fast, fast.begin():
        fast.add(DomainEvent(type="fast"))
    assert [e.type for e in await broker.poll_once()] == ["fast"]
    await slow.commit()
    await slow.close()
    assert [e.type for e in await broker.poll_once()] == ["slow"]
    assert await broker.poll_once() == []
    await broker.close()
    await engine.dispose()


@pytest.mark.redis
async def test_redis_presence_is_shared_between_processes(redis_url: str) -> None:
    one, two = RedisPresence(redis_url, prefix="hubtest:presence"), RedisPresence(redis_url, prefix="hubtest:presence")
    await one.start()
    await two.start()
    heard: asyncio.Queue[object] = asyncio.Queue()
    two.listen(heard)
    await one.announce(Notice(7, None, None, 1, "Sara", "viewing", time.time()))
    got = await asyncio.wait_for(heard.get(), 5)
    assert isinstance(got, Notice) and got.agent_name == "Sara"
    assert [n.state for n in await two.who(7)] == ["viewing"]
    await one.close()
    await two.close()
