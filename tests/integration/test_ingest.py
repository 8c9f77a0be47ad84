"""The one ingest path on SQLite and PostgreSQL: dedupe, identity, threading, raw kept."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import col, select

from hub.core.envelopes import Address, AddressKind, AttachmentRef
from hub.core.ingest import Outcome, ingest_once
from hub.core.threading import TOKEN_PREFIX
from hub.runtime import Runtime
from hub.store.models import Attachment, Conversation, Customer, DomainEvent, Identity, Message, RawInput
from tests.support.builders import T0, email, sms


async def count(rt: Runtime, table: type) -> int:
    async with rt.factory() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_second_delivery_of_a_message_is_a_recorded_noop(runtime: Runtime) -> None:
    first = await ingest_once(runtime.factory, email("m1@example.com"), runtime.ingest_context)
    second = await ingest_once(runtime.factory, email("m1@example.com"), runtime.ingest_context)
    assert first.outcome is Outcome.STORED and second.outcome is Outcome.DUPLICATE
    assert second.message_id == first.message_id and second.conversation_id == first.conversation_id
    assert await count(runtime, Message) == 1 and await count(runtime, Customer) == 1


async def test_eight_concurrent_ingests_of_one_message_store_exactly_one(runtime: Runtime) -> None:
    item = email("race@example.com", "new.guest@example.com")
    results = await asyncio.gather(*(ingest_once(runtime.factory, item, runtime.ingest_context) for _ in range(8)))
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["duplicate"] * 7 + ["stored"]
    assert len({r.message_id for r in results}) == 1
    assert await count(runtime, Message) == 1 and await count(runtime, Identity) == 1


async def test_concurrent_messages_from_one_new_address_make_one_customer(runtime: Runtime) -> None:
    items = [sms(f"SM{n}", "+393339998877", at=T0 + timedelta(seconds=n)) for n in range(8)]
    results = await asyncio.gather(*(ingest_once(runtime.factory, i, runtime.ingest_context) for i in items))
    assert all(r.outcome is Outcome.STORED for r in results)
    assert len({r.customer_id for r in results}) == 1
    assert await count(runtime, Customer) == 1 and await count(runtime, Message) == 8


async def test_same_channel_key_on_another_channel_is_not_a_duplicate(runtime: Runtime) -> None:
    await ingest_once(runtime.factory, email("X1", subject=None), runtime.ingest_context)
    other = await ingest_once(runtime.factory, sms("X1"), runtime.ingest_context)
    assert other.outcome is Outcome.STORED


async def test_new_address_starts_a_new_customer_and_mixed_case_finds_it_again(runtime: Runtime) -> None:
    a = await ingest_once(runtime.factory, email("a@x", "guest@example.com"), runtime.ingest_context)
    b = await ingest_once(runtime.factory, email("b@x", "other@example.com"), runtime.ingest_context)
    assert a.customer_id != b.customer_id
    async with runtime.factory() as session:
        rows = (await session.execute(select(Identity.value).order_by(col(Identity.id)))).scalars().all()
    assert rows == ["guest@example.com", "other@example.com"]


async def test_reply_referencing_a_message_id_joins_its_conversation(runtime: Runtime) -> None:
    first = await ingest_once(runtime.factory, email("orig@x", subject="Room"), runtime.ingest_context)
    reply = email("reply@x", subject="Something else", refs=("orig@x",), at=T0 + timedelta(days=40))
    second = await ingest_once(runtime.factory, reply, runtime.ingest_context)
    assert second.conversation_id == first.conversation_id


async def test_reply_token_wins_over_everything_else(runtime: Runtime) -> None:
    first = await ingest_once(runtime.factory, email("t1@x", subject="Booking"), runtime.ingest_context)
    async with runtime.factory() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
        token = conversation.thread_token
    reply = email("t2@x", "colleague@example.com", subject="Unrelated", refs=(TOKEN_PREFIX + token,))
    second = await ingest_once(runtime.factory, reply, runtime.ingest_context)
    assert second.conversation_id == first.conversation_id and second.customer_id != first.customer_id


async def test_subject_with_reply_prefix_threads_within_the_window_only(runtime: Runtime) -> None:
    first = await ingest_once(runtime.factory, email("s1@x", subject="Parcheggio"), runtime.ingest_context)
    near = await ingest_once(runtime.factory, email("s2@x", subject="R: RE: Parcheggio", at=T0 + timedelta(days=3)),
                             runtime.ingest_context)
    far = await ingest_once(runtime.factory, email("s3@x", subject="Re: Parcheggio", at=T0 + timedelta(days=60)),
                            runtime.ingest_context)
    assert near.conversation_id == first.conversation_id and far.conversation_id != first.conversation_id


async def test_sms_continue_the_open_conversation_until_the_window_passes(runtime: Runtime) -> None:
    a = await ingest_once(runtime.factory, sms("SM1"), runtime.ingest_context)
    b = await ingest_once(runtime.factory, sms("SM2", at=T0 + timedelta(days=2)), runtime.ingest_context)
    c = await ingest_once(runtime.factory, sms("SM3", at=T0 + timedelta(days=40)), runtime.ingest_context)
    assert a.conversation_id == b.conversation_id != c.conversation_id
    assert a.new_conversation and not b.new_conversation and c.new_conversation


async def test_reply_to_a_resolved_conversation_reopens_it(runtime: Runtime) -> None:
    from hub.core.ingest import set_status

    first = await ingest_once(runtime.factory, email("r1@x", subject="Towels"), runtime.ingest_context)
    async with runtime.factory() as session, session.begin():
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
        await set_status(session, conversation, "resolved", actor="test")
    await ingest_once(runtime.factory, email("r2@x", subject="Re: Towels", refs=("r1@x",)), runtime.ingest_context)
    async with runtime.factory() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None and conversation.status == "open"


async def test_raw_bytes_and_attachments_are_kept_beside_the_message(runtime: Runtime) -> None:
    data = b"%PDF-1.4 fake invoice"
    item = replace(email("att@x", raw=b"Subject: Invoice\r\n\r\nsee attached"),
                   attachments=(AttachmentRef("fattura.pdf", "application/pdf", len(data), None, data),))
    result = await ingest_once(runtime.factory, item, runtime.ingest_context)
    async with runtime.factory() as session:
        message = await session.get(Message, result.message_id)
        assert message is not None and message.raw_id is not None
        raw = await session.get(RawInput, message.raw_id)
        attachment = (await session.execute(select(Attachment))).scalar_one()
    assert raw is not None and raw.data == b"Subject: Invoice\r\n\r\nsee attached"
    assert attachment.storage_ref is not None and runtime.jobs.blobs.get(attachment.storage_ref) == data


async def test_ingest_publishes_events_for_live_streams_and_routing(runtime: Runtime) -> None:
    seen: list[str] = []

    async def listener(_session: object, event: object) -> None:
        seen.append(event.type)  # type: ignore[attr-defined]

    runtime.handlers.append(listener)  # type: ignore[arg-type]
    await ingest_once(runtime.factory, sms("SMev", "+393401234567"), runtime.ingest_context)
    assert seen == ["conversation.created", "message.received"]
    async with runtime.factory() as session:
        stored = (await session.execute(select(DomainEvent.type).order_by(col(DomainEvent.id)))).scalars().all()
    assert stored == ["conversation.created", "message.received"]


async def test_address_kinds_never_collide(runtime: Runtime) -> None:
    phone_like_email = email("k@x", "393471112233@example.com")
    a = await ingest_once(runtime.factory, phone_like_email, runtime.ingest_context)
    b = await ingest_once(runtime.factory, sms("SMk", "+393471112233"), runtime.ingest_context)
    assert a.customer_id != b.customer_id
    assert Address(AddressKind.EMAIL, "x@y") != Address(AddressKind.PHONE, "x@y")


async def test_new_conversation_belongs_to_the_inbox_and_team_written_to(runtime: Runtime) -> None:
    from hub.store.models import Inbox, Team

    async with runtime.factory() as session, session.begin():
        team = Team(name="Reception")
        session.add(team)
        await session.flush()
        session.add(Inbox(name="Front desk SMS", channel="sms", address="+390612345678", team_id=team.id))
    result = await ingest_once(runtime.factory, sms("SMinbox"), runtime.ingest_context)
    async with runtime.factory() as session:
        conversation = await session.get(Conversation, result.conversation_id)
        inbox = (await session.execute(select(Inbox))).scalar_one()
    assert conversation is not None and conversation.inbox_id == inbox.id and conversation.team_id == inbox.team_id
