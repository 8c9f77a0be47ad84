"""Shared steps of the process-level campaign tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.campaigns import scheduler, service
from hub.campaigns.jobs import context
from hub.campaigns.queue import LocalBatchQueue
from hub.campaigns.sending import SendContext
from hub.settings import load_settings
from hub.store.models import Campaign, CampaignRecipient
from tests.integration.campaigns import seed
from tests.support.services import free_port


@asynccontextmanager
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[hub_runtime.Runtime]:
    """A migrated runtime without queue workers, to seed and inspect the database."""
    settings = load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                             public_url="https://hub.test", mail_domain="hub.test")
    async with hub_runtime.running(settings, workers=False) as rt:
        yield rt


async def schedule_now(rt: hub_runtime.Runtime, campaign_id: int) -> None:
    async with rt.factory() as session, session.begin():
        await service.schedule(session, campaign_id, None, actor="test")


async def statuses(rt: hub_runtime.Runtime, campaign_id: int) -> dict[str, int]:
    async with rt.factory() as session:
        rows = await session.execute(select(col(CampaignRecipient.status), func.count())
                                     .where(col(CampaignRecipient.campaign_id) == campaign_id)
                                     .group_by(col(CampaignRecipient.status)))
        return {str(s): int(n) for s, n in rows.all()}


async def campaign_status(rt: hub_runtime.Runtime, campaign_id: int) -> str:
    async with rt.factory() as session:
        row = await session.get(Campaign, campaign_id, populate_existing=True)
        assert row is not None
        return row.status


async def wait_completed(rt: hub_runtime.Runtime, campaign_id: int, within: float = 120.0) -> dict[str, int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await campaign_status(rt, campaign_id) == "completed":
            return await statuses(rt, campaign_id)
        await asyncio.sleep(0.5)
    raise TimeoutError(f"campaign {campaign_id} not completed: {await statuses(rt, campaign_id)}")


async def wait_sent(rt: hub_runtime.Runtime, campaign_id: int, at_least: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await statuses(rt, campaign_id)).get("sent", 0) >= at_least:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"fewer than {at_least} sent: {await statuses(rt, campaign_id)}")


async def run_to_end(rt: hub_runtime.Runtime, rounds: int = 5) -> None:
    """Scheduler ticks and in-process batch drains, enough to finish a small campaign."""
    sc = context(rt)
    for _ in range(rounds):
        await scheduler.tick(sc)
        assert isinstance(sc.queue, LocalBatchQueue)
        await sc.queue.drain()


class HeldReplies:
    """An aiosmtpd handler that takes every message but holds the 250 for those to `hold` until released."""

    def __init__(self, hold: set[str]) -> None:
        self.hold = hold
        self.arrived, self.release = threading.Event(), threading.Event()
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        if self.hold & set(envelope.rcpt_tos):
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return "250 2.0.0 Message accepted for delivery"


class KeptBatches:
    """A BatchQueue that keeps the batches instead of running them (the test runs them itself)."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    async def enqueue(self, campaign_id: int, ids: list[int], *, tag: str, at: object = None) -> bool:
        self.ids += ids
        return True

    async def busy(self, campaign_id: int) -> bool:
        return True


@asynccontextmanager
async def held_campaign(database_url: str, tmp_path: Path, held: HeldReplies, recipients: int,
                        **settings: Any) -> AsyncIterator[tuple[SendContext, int, KeptBatches]]:
    """A running campaign of `recipients` whose batches are kept, sending to an SMTP server answering through `held`.

    Yields (send context, campaign id, the kept batches); the scheduler has ticked once.
    """
    controller = Controller(held, hostname="127.0.0.1", port=free_port())
    controller.start()
    config = load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                           mail_domain="hub.test", smtp_from="offers@hotel.test", smtp_host="127.0.0.1",
                           smtp_port=controller.port, **settings)
    try:
        async with hub_runtime.running(config, workers=False) as rt:
            await seed.customers(rt.factory, recipients)
            campaign_id = await seed.campaign(rt.factory)
            await schedule_now(rt, campaign_id)
            sc, batches = context(rt), KeptBatches()
            await scheduler.tick(replace(sc, queue=batches))
            yield sc, campaign_id, batches
    finally:
        held.release.set()
        controller.stop()
