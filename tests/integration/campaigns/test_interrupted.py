"""Batches interrupted mid-send: a cancelled job (shutdown, arq timeout) still records the answers it got,
and a pause stops every batch at its next chunk."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from hub.campaigns import lifecycle
from hub.campaigns.sending import send_batch
from hub.core.envelopes import Outbound, SendResult
from hub.core.jobs import Sender
from hub.store.models import CampaignRecipient, Message
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import HeldReplies, held_campaign


class Answers:
    """Passes sends to the real SMTP sender and tells when `wanted` answers came back."""

    def __init__(self, inner: Sender, wanted: int) -> None:
        self.inner, self.wanted, self.count = inner, wanted, 0
        self.enough = asyncio.Event()

    async def send(self, item: Outbound) -> SendResult:
        result = await self.inner.send(item)
        self.count += 1
        if self.count >= self.wanted:
            self.enough.set()
        return result


async def test_answers_in_before_a_cancel_are_recorded(database_url: str, tmp_path: Path) -> None:
    held = HeldReplies(hold={seed.address(2)})
    async with held_campaign(database_url, tmp_path, held, 3) as (sc, campaign_id, batches):
        answers = Answers(sc.senders["email"], wanted=2)
        job = asyncio.create_task(send_batch(replace(sc, senders={"email": answers}), campaign_id, batches.ids))
        await answers.enough.wait()
        assert await asyncio.to_thread(held.arrived.wait, 60)
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        async with sc.factory() as session:
            rows = (await session.execute(
                select(CampaignRecipient.address, CampaignRecipient.status, Message.delivery_status)
                .join(Message, col(Message.id) == col(CampaignRecipient.message_id))
                .order_by(col(CampaignRecipient.id)))).all()
    assert [tuple(r) for r in rows] == [(seed.address(0), "sent", "sent"), (seed.address(1), "sent", "sent"),
                                        (seed.address(2), "sending", "sending")]


async def test_a_pause_stops_a_running_batch_at_its_next_chunk(database_url: str, tmp_path: Path) -> None:
    held = HeldReplies(hold={seed.address(0)})
    async with held_campaign(database_url, tmp_path, held, 6, campaign_chunk_size=2) as (sc, campaign_id, batches):
        job = asyncio.create_task(send_batch(sc, campaign_id, sorted(batches.ids)))
        assert await asyncio.to_thread(held.arrived.wait, 60)  # the first chunk is being sent
        async with sc.factory() as session, session.begin():
            await lifecycle.transition(session, campaign_id, "pause", actor="test")
        held.release.set()
        tally = await job
        async with sc.factory() as session:
            statuses = sorted((await session.execute(
                select(CampaignRecipient.status).order_by(col(CampaignRecipient.id)))).scalars())
    assert (tally.sent, tally.stopped) == (2, "not running")
    assert statuses == ["queued"] * 4 + ["sent"] * 2
