"""Outbox delivery: in-process dispatcher and arq on real Redis run the same job, exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from arq import create_pool
from arq.worker import Worker
from sqlmodel import col, select

from hub import runtime as hub_runtime
from hub.core import outbox
from hub.core.dispatch import ArqQueue
from hub.core.envelopes import Outbound, SendResult
from hub.core.ingest import ingest_once
from hub.core.jobs import run_outbox_item, sweep
from hub.core.replies import ReplyRequest, create_reply
from hub.settings import Settings
from hub.store.models import Agent, Conversation, Message, OutboxItem, QuarantineItem
from hub.store.types import utcnow
from tests.support.builders import sms
from workers.settings import worker_settings


class SinkSender:
    """The far end of a channel: records what arrives and answers as told."""

    def __init__(self, answers: list[SendResult] | None = None, crash: bool = False) -> None:
        self.received: list[Outbound] = []
        self.answers = answers or []
        self.crash = crash

    async def send(self, item: Outbound) -> SendResult:
        if self.crash:
            raise RuntimeError("provider exploded")
        self.received.append(item)
        return self.answers.pop(0) if self.answers else SendResult(ok=True, provider_id=f"P{item.message_id}")


async def _reply(rt: hub_runtime.Runtime, body: str = "Certo!") -> int:
    result = await ingest_once(rt.factory, sms(f"SM-{body}"), rt.ingest_context)
    async with outbox.unit_of_work(rt.factory, rt.queue) as session:
        agent = Agent(email=f"{body.lower()}@hotel.test".replace("!", ""), name="A")
        session.add(agent)
        await session.flush()
        conversation = await session.get(Conversation, result.conversation_id)
        assert conversation is not None
        message = await create_reply(session, conversation, agent, ReplyRequest(body=body),
                                     mail_domain="hub.test", hub_address="reception@hotel.test")
        assert message.id is not None
        return message.id


async def _message(rt: hub_runtime.Runtime, message_id: int) -> Message:
    async with rt.factory() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message


async def _drain(rt: hub_runtime.Runtime) -> None:
    queue = hub_runtime.inprocess(rt)
    assert queue is not None
    await queue.drain()


async def test_reply_is_sent_once_through_the_in_process_dispatcher(runtime: hub_runtime.Runtime) -> None:
    sink = SinkSender()
    runtime.jobs.senders = {"sms": sink}
    message_id = await _reply(runtime)
    await _drain(runtime)
    message = await _message(runtime, message_id)
    assert [o.body_text for o in sink.received] == ["Certo!"]
    assert message.delivery_status == "sent" and message.provider_id == f"P{message_id}"
    assert await run_outbox_item(runtime.jobs, 1) == "skipped"
    assert len(sink.received) == 1


async def test_transient_failure_is_retried_with_backoff(runtime: hub_runtime.Runtime) -> None:
    sink = SinkSender([SendResult(ok=False, detail="429 busy", retry_after=0.05)])
    runtime.jobs.senders = {"sms": sink}
    message_id = await _reply(runtime)
    for _ in range(100):
        if (await _message(runtime, message_id)).delivery_status == "sent":
            break
        await asyncio.sleep(0.05)
    async with runtime.factory() as session:
        item = (await session.execute(select(OutboxItem))).scalar_one()
    assert len(sink.received) == 2 and item.status == "done" and item.attempt == 2


async def test_permanent_failure_marks_the_message_failed_with_the_reason(runtime: hub_runtime.Runtime) -> None:
    runtime.jobs.senders = {"sms": SinkSender([SendResult(ok=False, permanent=True, code="21211",
                                                          detail="invalid number")])}
    message_id = await _reply(runtime)
    await _drain(runtime)
    message = await _message(runtime, message_id)
    async with runtime.factory() as session:
        item = (await session.execute(select(OutboxItem))).scalar_one()
    assert message.delivery_status == "failed" and "invalid number" in (message.delivery_detail or "")
    assert item.status == "failed" and item.attempt == 1


async def test_an_item_whose_payload_names_no_message_fails_without_sending(runtime: hub_runtime.Runtime) -> None:
    sink = SinkSender()
    runtime.jobs.senders = {"sms": sink}
    async with runtime.factory() as session, session.begin():
        item = OutboxItem(kind="send_message", payload={"message_id": "not-a-number"})
        session.add(item)
    assert item.id is not None
    assert await run_outbox_item(runtime.jobs, item.id) == "failed"
    async with runtime.factory() as session:
        stored = await session.get(OutboxItem, item.id)
    assert stored is not None and stored.status == "failed" and "no message id" in (stored.last_error or "")
    assert sink.received == []


async def test_a_job_that_keeps_crashing_is_shunted_with_its_traceback(runtime: hub_runtime.Runtime) -> None:
    runtime.jobs.senders = {"sms": SinkSender(crash=True)}
    message_id = await _reply(runtime)
    await _drain(runtime)
    async with runtime.factory() as session, session.begin():
        item = (await session.execute(select(OutboxItem))).scalar_one()
        assert (item.status, item.attempt) == ("queued", 1)  # first crash: retried later
        item.max_attempts, item.available_at = 2, utcnow()
    assert await run_outbox_item(runtime.jobs, item.id or 0) == "dead"
    async with runtime.factory() as session:
        dead = (await session.execute(select(QuarantineItem))).scalar_one()
        item = (await session.execute(select(OutboxItem))).scalar_one()
    assert item.status == "dead" and dead.stage == "job:send_message" and "provider exploded" in dead.error
    assert dead.payload["message_id"] == message_id and "Traceback" in (dead.traceback or "")


async def test_sweeper_revives_an_item_a_dead_worker_left_running(runtime: hub_runtime.Runtime) -> None:
    sink = SinkSender()
    runtime.jobs.senders = {"sms": sink}
    async with runtime.factory() as session, session.begin():
        session.add(OutboxItem(kind="send_message", payload={"message_id": await _reply_without_dispatch(runtime)},
                               status="running", attempt=1, claimed_at=utcnow() - timedelta(hours=1)))
    counts = await sweep(runtime.jobs, grace=timedelta(0))
    await _drain(runtime)
    assert counts["revived"] == 1 and len(sink.received) == 1


async def _reply_without_dispatch(rt: hub_runtime.Runtime) -> int:
    result = await ingest_once(rt.factory, sms("SM-crash"), rt.ingest_context)
    async with rt.factory() as session, session.begin():
        message = Message(conversation_id=result.conversation_id or 0, customer_id=result.customer_id or 0,
                          direction="out", channel="sms", sender="+390612345678", recipient="+393471112233",
                          body_text="left behind", delivery_status="queued")
        session.add(message)
        await session.flush()
        assert message.id is not None
        return message.id


@pytest.mark.redis
async def test_outbox_delivery_through_arq_on_real_redis(settings: Settings, redis_url: str) -> None:
    arq_settings = settings.model_copy(update={"redis_url": redis_url})
    sink = SinkSender()
    rt = await hub_runtime.build(arq_settings)
    assert isinstance(rt.queue.target, ArqQueue)  # type: ignore[attr-defined]
    message_ids = [await _reply(rt, f"Hello{n}") for n in range(5)]
    pool = await create_pool(hub_runtime.redis_settings(redis_url))
    assert await pool.enqueue_job("run_outbox_item", 1, _job_id="outbox:1") is None  # deterministic id: deduped

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["hub"] = await hub_runtime.build(arq_settings)
        ctx["hub"].jobs.senders = {"sms": sink}

    worker = Worker(**worker_settings(redis_url, burst=True, poll_delay=0.05, on_startup=startup,
                                      handle_signals=False, cron_jobs=[]))
    await worker.main()
    await worker.close()
    await pool.aclose()
    statuses = [(await _message(rt, m)).delivery_status for m in message_ids]
    async with rt.factory() as session:
        done = (await session.execute(select(OutboxItem.status).order_by(col(OutboxItem.id)))).scalars().all()
    await hub_runtime.close(rt)
    assert statuses == ["sent"] * 5 and done == ["done"] * 5
    assert sorted(o.body_text for o in sink.received) == [f"Hello{n}" for n in range(5)]


async def test_a_shunted_job_is_replayed_once_the_provider_works_again(runtime: hub_runtime.Runtime) -> None:
    from hub.core import quarantine as shunt

    runtime.jobs.senders = {"sms": SinkSender(crash=True)}
    message_id = await _reply(runtime)
    await _drain(runtime)
    async with runtime.factory() as session, session.begin():
        item = (await session.execute(select(OutboxItem))).scalar_one()
        item.max_attempts, item.available_at = 1, utcnow()
    assert await run_outbox_item(runtime.jobs, item.id or 0) == "dead"
    [dead] = await shunt.pending(runtime.factory, stage="job:")
    fixed = SinkSender()
    runtime.jobs.senders = {"sms": fixed}
    assert "re-queued" in await shunt.replay(runtime.factory, runtime.queue, {}, dead.id or 0)
    await _drain(runtime)
    assert [o.message_id for o in fixed.received] == [message_id]
    assert await shunt.pending(runtime.factory) == []
    with pytest.raises(shunt.NotReplayable):
        await shunt.replay(runtime.factory, runtime.queue, {}, 999)
