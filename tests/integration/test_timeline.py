"""The customer timeline: messages, notes, calls and status changes in time order, keyset pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.core.calls import log_call
from hub.core.ingest import ingest_once, set_status
from hub.core.replies import add_note
from hub.core.timeline import BadCursor, timeline
from hub.runtime import Runtime
from hub.store.models import Agent, Conversation
from tests.support.builders import T0, call, email, sms


async def _story(runtime: Runtime) -> int:
    """Email, then an SMS, a call, a note and a status change from one customer across channels."""
    first = await ingest_once(runtime.factory, sms("SM1", at=T0), runtime.ingest_context)
    async with runtime.factory() as session, session.begin():
        await log_call(session, call("CA1", at=T0 + timedelta(minutes=5)))
        agent = Agent(email="marco@hotel.test", name="Marco")
        session.add(agent)
        await session.flush()
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
        await add_note(session, conversation, agent, "@luca please check room 214")
        await set_status(session, conversation, "pending", actor="marco@hotel.test")
    await ingest_once(runtime.factory, sms("SM2", at=T0 + timedelta(minutes=1)), runtime.ingest_context)
    assert first.customer_id is not None
    return first.customer_id


async def test_timeline_merges_channels_newest_first(runtime: Runtime) -> None:
    customer_id = await _story(runtime)
    async with runtime.factory() as session:
        page = await timeline(session, customer_id, limit=50)
    kinds = [e.kind for e in page.items]
    assert sorted(kinds) == ["call", "message", "message", "note", "status"]
    times = [e.occurred_at for e in page.items]
    assert times == sorted(times, reverse=True)
    assert page.items[-1].kind == "message" and page.items[-1].occurred_at == T0
    assert page.next_cursor is None


async def test_pages_are_stable_while_new_messages_arrive(runtime: Runtime) -> None:
    for n in range(7):
        await ingest_once(runtime.factory, sms(f"P{n}", at=T0 + timedelta(minutes=n)), runtime.ingest_context)
    async with runtime.factory() as session:
        page1 = await timeline(session, 1, limit=3)
    await ingest_once(runtime.factory, sms("late", at=T0 + timedelta(hours=5)), runtime.ingest_context)
    seen = [e.ref_id for e in page1.items]
    cursor = page1.next_cursor
    while cursor is not None:
        async with runtime.factory() as session:
            page = await timeline(session, 1, before=cursor, limit=3)
        seen += [e.ref_id for e in page.items]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 7


async def test_items_at_the_same_instant_are_neither_lost_nor_repeated(runtime: Runtime) -> None:
    for n in range(5):
        await ingest_once(runtime.factory, email(f"same{n}@x", subject=f"s{n}"), runtime.ingest_context)
    seen: list[int | None] = []
    cursor: str | None = None
    for _ in range(5):
        async with runtime.factory() as session:
            page = await timeline(session, 1, before=cursor, limit=2)
        seen += [e.ref_id for e in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert sorted(x for x in seen if x is not None) == [1, 2, 3, 4, 5]


async def test_forged_cursor_is_refused(runtime: Runtime) -> None:
    async with runtime.factory() as session:
        with pytest.raises(BadCursor):
            await timeline(session, 1, before="not-a-cursor")
