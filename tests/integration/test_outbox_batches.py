"""Outbox items that batch (send_message on a batch channel): claimed, run and recorded together, each once.

Email registers its sends for batches; these tests register SMS too, to drive batches with a
scripted sender.
"""

from __future__ import annotations

import asyncio
import dataclasses

from sqlalchemy import update
from sqlmodel import col, select

from hub import runtime as hub_runtime
from hub.core import delivery, outbox
from hub.core.envelopes import Outbound, SendResult
from hub.core.ingest import ingest_once
from hub.core.jobs import claim_batch, run_outbox_item
from hub.core.replies import ReplyRequest, create_reply
from hub.store.models import Agent, Conversation, Message, OutboxItem, QuarantineItem
from tests.support.builders import sms


def _batches_for_sms(rt: hub_runtime.Runtime) -> ScriptedSender:
    rt.jobs.batch_channels = {"send_message": {"sms"}}
    sender = ScriptedSender(rt)
    rt.jobs.senders = {"sms": sender}
    return sender


class ScriptedSender:
    """Answers per message body: `ok`, `perm`, `later` (transient), `boom` (crash), `receipt` (a
    handset receipt lands before the send returns); counts every send it is asked for."""

    def __init__(self, rt: hub_runtime.Runtime) -> None:
        self.rt = rt
        self.sent: list[int] = []

    async def send(self, item: Outbound) -> SendResult:
        self.sent.append(item.message_id)
        await asyncio.sleep(0)  # let the batch's other sends interleave
        kind = item.body_text.split("-")[0]
        if kind == "boom":
            raise RuntimeError("provider exploded")
        if kind == "receipt":
            async with self.rt.factory() as session, session.begin():
                await session.execute(update(Message).where(col(Message.id) == item.message_id)
                                      .values(delivery_status="delivered"))
        if kind == "perm":
            return SendResult(ok=False, permanent=True, code="21211", detail="invalid number")
        if kind == "later":
            return SendResult(ok=False, detail="429 busy", retry_after=30)
        return SendResult(ok=True, provider_id=f"P{item.message_id}", detail="queued at provider")


async def _replies(rt: hub_runtime.Runtime, bodies: list[str]) -> list[tuple[int, int]]:
    """(message id, outbox id) of one reply per body, committed but not handed to the dispatcher."""
    result = await ingest_once(rt.factory, sms("SM-batch"), rt.ingest_context)
    out: list[tuple[int, int]] = []
    async with rt.factory() as session, session.begin():
        agent = Agent(email="batch@hotel.test", name="B")
        session.add(agent)
        await session.flush()
        conversation = await session.get(Conversation, result.conversation_id)
        assert conversation is not None
        for body in bodies:
            message = await create_reply(session, conversation, agent, ReplyRequest(body=body),
                                         mail_domain="hub.test", hub_address="reception@hotel.test")
            assert message.id is not None
            out.append((message.id, session.info[outbox._PENDING][-1]))
        outbox.take_pending(session)
    return out


async def _rows(rt: hub_runtime.Runtime) -> tuple[dict[int, Message], dict[int, OutboxItem]]:
    async with rt.factory() as session:
        messages = {m.id: m for m in (await session.scalars(select(Message).where(col(Message.direction) == "out")))}
        items = {i.id: i for i in (await session.scalars(select(OutboxItem)))}
    return messages, items  # type: ignore[return-value]


async def test_one_job_claims_and_sends_the_due_batch_and_the_other_jobs_are_no_ops(
    runtime: hub_runtime.Runtime,
) -> None:
    sender = _batches_for_sms(runtime)
    made = await _replies(runtime, [f"ok-{n}" for n in range(12)])
    first = made[0][1]
    assert await run_outbox_item(runtime.jobs, first) == "done"
    assert sorted(sender.sent) == sorted(m for m, _ in made)  # the whole due batch, by one job
    assert [await run_outbox_item(runtime.jobs, item_id) for _, item_id in made[1:]] == ["skipped"] * 11
    messages, items = await _rows(runtime)
    assert {m.delivery_status for m in messages.values()} == {"sent"}
    assert all(messages[m].provider_id == f"P{m}" for m, _ in made)
    assert all(items[i].status == "done" and items[i].result == {"provider_id": f"P{m}", "detail": "queued at provider"}
               for m, i in made)
    assert len(sender.sent) == 12


async def test_a_claim_reads_its_batchs_messages_in_the_same_transaction(runtime: hub_runtime.Runtime) -> None:
    _batches_for_sms(runtime)
    made = await _replies(runtime, [f"ok-{n}" for n in range(5)])
    claimed = await claim_batch(runtime.jobs, made[2][1])
    assert claimed.items[0].id == made[2][1]
    assert sorted(item.id for item in claimed.items) == sorted(i for _, i in made)
    messages, items = await _rows(runtime)
    for item in claimed.items:  # each job is its row as the claim left it
        stored = items[item.id]
        assert (stored.status, stored.attempt, item.attempt) == ("running", 1, 1)
        assert stored.claimed_at is not None and stored.claimed_at == stored.updated_at
        assert (item.kind, item.payload, item.max_attempts, item.created_at) == (
            stored.kind, stored.payload, stored.max_attempts, stored.created_at)
    loaded = claimed.loaded[delivery.LOAD_KEY]
    assert sorted(loaded) == sorted(m for m, _ in made)
    for message_id, pending in loaded.items():
        message = messages[message_id]
        assert (pending.delivery_status, pending.outbound.body_text, pending.outbound.recipient.value) == (
            message.delivery_status, message.body_text, message.recipient)


async def test_each_item_of_a_batch_gets_its_own_outcome(runtime: hub_runtime.Runtime) -> None:
    _batches_for_sms(runtime)
    made = await _replies(runtime, ["ok-1", "perm-1", "later-1", "boom-1", "receipt-1"])
    (ok, ok_item), (perm, perm_item), (later, later_item), (_, boom_item), (receipt, receipt_item) = made
    async with runtime.factory() as session, session.begin():  # what an earlier try left on the rows
        await session.execute(update(OutboxItem).where(col(OutboxItem.id).in_([perm_item, later_item]))
                              .values(result={"earlier": "kept"}))
    assert await run_outbox_item(runtime.jobs, ok_item) == "done"
    messages, items = await _rows(runtime)
    assert (messages[ok].delivery_status, items[ok_item].status) == ("sent", "done")
    assert messages[perm].delivery_status == "failed" and "invalid number" in (messages[perm].delivery_detail or "")
    assert (items[perm_item].status, items[perm_item].last_error) == ("failed", "21211 invalid number")
    assert (messages[later].delivery_status, items[later_item].status) == ("queued", "queued")
    assert items[later_item].last_error == "TransientError: 429 busy"
    assert items[later_item].available_at > items[ok_item].updated_at
    assert (items[boom_item].status, items[boom_item].last_error) == ("queued", "RuntimeError: provider exploded")
    # The receipt arrived while the send was in flight: the late "sent" does not take it back.
    assert (messages[receipt].delivery_status, items[receipt_item].status) == ("delivered", "done")
    assert items[receipt_item].result["provider_id"] == f"P{receipt}"
    assert items[perm_item].result == items[later_item].result == {"earlier": "kept"}  # only a done item's is new


async def test_a_batch_item_past_its_attempts_is_shunted_with_its_traceback(runtime: hub_runtime.Runtime) -> None:
    _batches_for_sms(runtime)
    [(_, boom_item), (ok, ok_item)] = await _replies(runtime, ["boom-2", "ok-2"])
    async with runtime.factory() as session, session.begin():
        await session.execute(update(OutboxItem).where(col(OutboxItem.id) == boom_item).values(max_attempts=1))
    assert await run_outbox_item(runtime.jobs, boom_item) == "dead"
    messages, items = await _rows(runtime)
    async with runtime.factory() as session:
        dead = (await session.scalars(select(QuarantineItem))).one()
    assert items[boom_item].status == "dead"
    assert (items[ok_item].status, messages[ok].delivery_status) == ("done", "sent")
    assert dead.stage == "job:send_message" and dead.payload["outbox_id"] == boom_item
    assert "Traceback" in (dead.traceback or "") and "provider exploded" in dead.error


async def test_two_workers_racing_over_the_same_jobs_send_every_message_once(runtime: hub_runtime.Runtime) -> None:
    sender = _batches_for_sms(runtime)
    made = await _replies(runtime, [f"ok-{n}" for n in range(120)])
    ids = [item_id for _, item_id in made]
    # Two job contexts (two worker processes: separate claimed-ahead notes, small batches), each
    # given every job, twice over (arq is at-least-once).
    workers = [dataclasses.replace(runtime.jobs, batch_size=7, claimed_ahead={}, db_turn=asyncio.Lock())
               for _ in range(2)]
    outcomes = await asyncio.gather(*(run_outbox_item(w, i) for i in ids * 2 for w in workers))
    assert outcomes.count("done") >= -(-120 // 7) and set(outcomes) <= {"done", "skipped"}  # batches <= 7
    assert sorted(sender.sent) == sorted(m for m, _ in made)
    messages, items = await _rows(runtime)
    assert {m.delivery_status for m in messages.values()} == {"sent"}
    assert {(i.status, i.attempt) for i in items.values()} == {("done", 1)}


async def test_items_of_channels_that_do_not_batch_run_one_by_one(runtime: hub_runtime.Runtime) -> None:
    sender = ScriptedSender(runtime)
    runtime.jobs.senders = {"sms": sender}
    assert runtime.jobs.batch_channels.get("send_message", set()) <= {"email"}
    made = await _replies(runtime, ["ok-a", "ok-b"])
    assert await run_outbox_item(runtime.jobs, made[0][1]) == "done"
    assert sender.sent == [made[0][0]]
    _, items = await _rows(runtime)
    assert items[made[0][1]].payload["channel"] == "sms" and items[made[1][1]].status == "queued"


class ManySender(ScriptedSender):
    """A ScriptedSender with send_many (as SMTP has): the batch goes to it in one call, or it crashes."""

    def __init__(self, rt: hub_runtime.Runtime) -> None:
        super().__init__(rt)
        self.calls: list[int] = []

    async def send_many(self, items: list[Outbound]) -> list[SendResult]:
        self.calls.append(len(items))
        if any(item.body_text.startswith("crash") for item in items):
            raise RuntimeError("sender lost its mind")
        return [await self.send(item) for item in items]


async def test_a_sender_with_send_many_gets_the_whole_batch_in_one_call(runtime: hub_runtime.Runtime) -> None:
    runtime.jobs.batch_channels = {"send_message": {"sms"}}
    sender = ManySender(runtime)
    runtime.jobs.senders = {"sms": sender}
    made = await _replies(runtime, ["ok-a", "perm-a", "later-a", "ok-b"])
    assert await run_outbox_item(runtime.jobs, made[0][1]) == "done"
    assert sender.calls == [4]
    messages, items = await _rows(runtime)
    assert [items[i].status for _, i in made] == ["done", "failed", "queued", "done"]
    assert [messages[m].delivery_status for m, _ in made] == ["sent", "failed", "queued", "sent"]


async def test_a_batch_sender_that_crashes_leaves_every_item_of_the_batch_for_a_retry(
    runtime: hub_runtime.Runtime,
) -> None:
    runtime.jobs.batch_channels = {"send_message": {"sms"}}
    sender = ManySender(runtime)
    runtime.jobs.senders = {"sms": sender}
    made = await _replies(runtime, ["ok-c", "crash-c"])
    assert await run_outbox_item(runtime.jobs, made[0][1]) == "retry"
    messages, items = await _rows(runtime)
    assert all(items[i].status == "queued" and items[i].last_error == "RuntimeError: sender lost its mind"
               for _, i in made)
    assert {messages[m].delivery_status for m, _ in made} == {"queued"} and sender.sent == []
