"""Sending SMS and WhatsApp through the outbox with the real twilio client against a local fake Twilio."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlmodel import col, select

from hub import runtime as hub_runtime
from hub.channels.sms.ratelimit import SenderKind
from hub.channels.sms.sender import TwilioSender
from hub.channels.sms.throttle import LocalBucket, RedisBucket, Throttle
from hub.channels.sms.wiring import SENDER_KEY
from hub.core import outbox
from hub.core.delivery import to_outbound
from hub.core.envelopes import Address, AddressKind, Channel, Inbound
from hub.core.ingest import ingest_once
from hub.core.replies import ReplyError, ReplyRequest, create_reply
from hub.settings import Settings
from hub.store.models import Agent, Consent, Conversation, Message, OutboxItem, Suppression
from hub.store.types import utcnow
from tests.support.twilio_fake import (
    BROKEN,
    HUB_NUMBER,
    INVALID,
    OPTED_OUT,
    TOO_MANY,
    FakeTwilio,
    sms_settings,
)

GUEST = "+393471112233"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, twilio: FakeTwilio) -> Settings:
    return sms_settings(database_url, tmp_path, twilio)


@pytest.fixture
async def rt(runtime: hub_runtime.Runtime) -> AsyncIterator[hub_runtime.Runtime]:
    yield runtime
    await runtime.extras[SENDER_KEY].aclose()


def inbound(
    sid: str, sender: str = GUEST, *, channel: Channel = Channel.SMS, age: timedelta = timedelta(0)
) -> Inbound:
    kind = AddressKind.WHATSAPP if channel is Channel.WHATSAPP else AddressKind.PHONE
    return Inbound(channel=channel, external_id=sid, sender=Address(kind, sender),
                   recipient=Address(kind, HUB_NUMBER), received_at=utcnow() - age, body_text="Ciao")


async def reply(rt: hub_runtime.Runtime, sender: str = GUEST, body: str = "Certo!", *,
                channel: Channel = Channel.SMS, age: timedelta = timedelta(0)) -> int:
    item = inbound(f"SM{sender[1:]}{channel}", sender, channel=channel, age=age)
    result = await ingest_once(rt.factory, item, rt.ingest_context)
    async with outbox.unit_of_work(rt.factory, rt.queue) as session:
        agent = (await session.execute(select(Agent))).scalars().first()
        if agent is None:
            agent = Agent(email="agent@hotel.test", name="A")
            session.add(agent)
            await session.flush()
        conversation = await session.get(Conversation, result.conversation_id)
        assert conversation is not None
        message = await create_reply(session, conversation, agent, ReplyRequest(body=body),
                                     mail_domain="hub.test", hub_address="reception@hotel.test",
                                     handlers=tuple(rt.handlers))
        assert message.id is not None
        return message.id


async def drained(rt: hub_runtime.Runtime, message_id: int) -> Message:
    queue = hub_runtime.inprocess(rt)
    assert queue is not None
    await queue.drain()
    async with rt.factory() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message


async def settled(rt: hub_runtime.Runtime, message_id: int) -> Message:
    """Wait (10 s at most) for a retried send, re-enqueued after a backoff, to reach a final state."""
    deadline = time.monotonic() + 10.0
    while True:
        message = await drained(rt, message_id)
        if message.delivery_status in {"sent", "failed"} or time.monotonic() > deadline:
            return message
        await asyncio.sleep(0.1)


async def test_a_reply_goes_out_with_segments_sender_and_status_callback(rt: hub_runtime.Runtime,
                                                                        twilio: FakeTwilio) -> None:
    message = await drained(rt, await reply(rt, body="€" * 100))
    assert message.delivery_status == "sent" and message.provider_id == f"SM{1:032x}"
    assert message.headers["segments"] == 2  # 100 GSM-7 escape pairs = 200 septets
    [request] = twilio.requests
    assert (request["To"], request["From"], request["Body"]) == (GUEST, HUB_NUMBER, "€" * 100)
    assert request["StatusCallback"] == "https://hub.example.test/webhooks/twilio/status"


async def test_21610_records_the_opt_out_and_the_next_send_makes_no_request(rt: hub_runtime.Runtime,
                                                                          twilio: FakeTwilio) -> None:
    twilio.answers[GUEST] = [OPTED_OUT]
    message = await drained(rt, await reply(rt))
    assert message.delivery_status == "failed" and "21610" in (message.delivery_detail or "")
    async with rt.factory() as session:
        suppression = (await session.execute(select(Suppression))).scalar_one()
        consent = (await session.execute(select(Consent))).scalar_one()
    assert (suppression.channel, suppression.address, suppression.reason) == ("sms", GUEST, "opt_out")
    assert (consent.granted, consent.source) == (False, "twilio_error_21610")
    second = await drained(rt, await reply(rt, body="Ancora?"))
    assert second.delivery_status == "failed" and "suppressed" in (second.delivery_detail or "")
    assert len(twilio.to(GUEST)) == 1


async def test_21211_is_a_permanent_failure_with_twilios_code_and_message(rt: hub_runtime.Runtime,
                                                                          twilio: FakeTwilio) -> None:
    twilio.answers[GUEST] = [INVALID]
    message_id = await reply(rt)
    message = await drained(rt, message_id)
    assert message.delivery_status == "failed"
    assert message.delivery_detail == f"Twilio error 21211: {INVALID[2]}"
    async with rt.factory() as session:
        item = (await session.execute(select(OutboxItem))).scalar_one()
    assert item.status == "failed" and item.attempt == 1 and len(twilio.requests) == 1


@pytest.mark.parametrize("error", [TOO_MANY, BROKEN], ids=["429", "500"])
async def test_429_and_500_are_retried_with_backoff(rt: hub_runtime.Runtime, twilio: FakeTwilio,
                                                    error: tuple[int, int, str]) -> None:
    twilio.answers[GUEST] = [error]
    message = await settled(rt, await reply(rt))
    assert message.delivery_status == "sent" and len(twilio.requests) == 2
    async with rt.factory() as session:
        item = (await session.execute(select(OutboxItem))).scalar_one()
    assert item.status == "done" and item.attempt == 2


async def test_bodies_over_1600_characters_never_reach_twilio(rt: hub_runtime.Runtime) -> None:
    message_id = await reply(rt)
    async with rt.factory() as session, session.begin():
        message = await session.get(Message, message_id)
        assert message is not None
        message.body_text = "x" * 1601  # as if written by a path without the reply check
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        envelope = to_outbound(message, conversation)
    await drained(rt, message_id)  # let the queued original go first
    sender: TwilioSender = rt.extras[SENDER_KEY]
    result = await sender.send(dataclasses.replace(envelope, body_text="x" * 1601))
    assert (result.ok, result.permanent, result.code) == (False, True, "body")
    assert "1601 characters" in result.detail and "1600" in result.detail


async def test_whatsapp_uses_prefixed_addresses_inside_the_window(rt: hub_runtime.Runtime,
                                                                  twilio: FakeTwilio) -> None:
    message = await drained(rt, await reply(rt, channel=Channel.WHATSAPP))
    assert message.channel == "whatsapp" and message.delivery_status == "sent"
    [request] = twilio.requests
    assert (request["To"], request["From"]) == (f"whatsapp:{GUEST}", f"whatsapp:{HUB_NUMBER}")


async def test_whatsapp_free_text_outside_24_hours_is_refused_at_reply_and_at_send(
    rt: hub_runtime.Runtime, twilio: FakeTwilio
) -> None:
    with pytest.raises(ReplyError) as refused:
        await reply(rt, channel=Channel.WHATSAPP, age=timedelta(hours=25))
    assert refused.value.field == "body" and "24-hour" in str(refused.value)
    async with rt.factory() as session:
        found = await session.execute(select(Message).where(col(Message.channel) == "whatsapp"))
        message = found.scalar_one()
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
    envelope = dataclasses.replace(to_outbound(message, conversation), channel=Channel.WHATSAPP)
    sender: TwilioSender = rt.extras[SENDER_KEY]
    result = await sender.send(envelope)
    assert (result.permanent, result.code) == (True, "whatsapp_window") and "24-hour" in result.detail
    meta = {"content_sid": "HX" + "1" * 32, "content_variables": '{"1":"x"}'}
    template = dataclasses.replace(envelope, meta=meta)
    assert (await sender.send(template)).ok
    assert twilio.requests[-1]["ContentSid"] == "HX" + "1" * 32 and "Body" not in twilio.requests[-1]


async def test_the_local_bucket_holds_the_configured_rate() -> None:
    throttle = Throttle(LocalBucket(), {SenderKind.LONG_CODE: 50.0})
    started = time.monotonic()
    for _ in range(11):
        assert await throttle.acquire(HUB_NUMBER) == 0.0
    # 10 waits of 20 ms after the first token; only the lower bound is a property of the bucket
    # (an upper bound would time the machine: bench/sms_throttle.py measures the rate itself).
    assert time.monotonic() - started >= 0.18


@pytest.mark.redis
async def test_the_redis_bucket_is_shared_by_concurrent_takers(redis_url: str) -> None:
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    throttles = [Throttle(RedisBucket(c), {SenderKind.LONG_CODE: 40.0}) for c in clients]
    started = time.monotonic()

    async def worker(throttle: Throttle) -> None:
        for _ in range(5):
            await throttle.acquire(HUB_NUMBER)

    await asyncio.gather(*(worker(t) for t in throttles))
    elapsed = time.monotonic() - started
    for c in clients:
        await c.aclose()
    assert elapsed >= 0.45  # 20 tokens at 40/s from one shared bucket (burst 1): at least 19 waits of 25 ms
