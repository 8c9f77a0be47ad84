"""A batch job cancelled mid-send (worker shutdown, arq timeout) still records the answers it got."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.campaigns import scheduler
from hub.campaigns.jobs import context
from hub.campaigns.sending import send_batch
from hub.core.envelopes import Outbound, SendResult
from hub.core.jobs import Sender
from hub.settings import load_settings
from hub.store.models import CampaignRecipient, Message
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import HeldReplies, schedule_now
from tests.support.services import free_port


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


class Remember:
    """A BatchQueue that keeps the batches instead of running them (the test runs one itself)."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    async def enqueue(self, campaign_id: int, ids: list[int], *, tag: str, at: object = None) -> bool:
        self.ids += ids
        return True

    async def busy(self, campaign_id: int) -> bool:
        return True


async def test_answers_in_before_a_cancel_are_recorded(database_url: str, tmp_path: Path) -> None:
    held = HeldReplies(hold={seed.address(2)})
    controller = Controller(held, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                             mail_domain="hub.test", smtp_from="offers@hotel.test", smtp_host="127.0.0.1",
                             smtp_port=controller.port)
    try:
        async with hub_runtime.running(settings, workers=False) as rt:
            await seed.customers(rt.factory, 3)
            campaign_id = await seed.campaign(rt.factory)
            await schedule_now(rt, campaign_id)
            sc, batches = context(rt), Remember()
            await scheduler.tick(type(sc)(sc.factory, sc.senders, sc.throttle, batches, sc.settings))  # type: ignore[arg-type]
            answers = Answers(sc.senders["email"], wanted=2)
            job = asyncio.create_task(send_batch(
                type(sc)(sc.factory, {"email": answers}, sc.throttle, batches, sc.settings), campaign_id, batches.ids))  # type: ignore[arg-type]
            await answers.enough.wait()
            assert await asyncio.to_thread(held.arrived.wait, 60)
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            async with rt.factory() as session:
                rows = (await session.execute(
                    select(CampaignRecipient.address, CampaignRecipient.status, Message.delivery_status)
                    .join(Message, col(Message.id) == col(CampaignRecipient.message_id))
                    .order_by(col(CampaignRecipient.id)))).all()
    finally:
        held.release.set()
        controller.stop()
    assert [tuple(r) for r in rows] == [(seed.address(0), "sent", "sent"), (seed.address(1), "sent", "sent"),
                                        (seed.address(2), "sending", "sending")]
