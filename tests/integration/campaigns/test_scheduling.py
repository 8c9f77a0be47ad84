"""Scheduler overlap and per-customer timezones, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.campaigns import materialise, scheduler
from hub.campaigns.jobs import context
from hub.campaigns.queue import LocalBatchQueue
from hub.settings import Settings, load_settings
from hub.store.models import Campaign, CampaignRecipient
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import schedule_now


def _settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                         campaign_batch_size=100)


class _Recorder:
    """A BatchQueue that only remembers what was enqueued (the sending is not under test here)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[int, list[int], datetime | None]] = []

    async def enqueue(self, campaign_id: int, ids: list[int], *, tag: str, at: datetime | None = None) -> bool:
        self.jobs.append((campaign_id, list(ids), at))
        return True

    async def busy(self, campaign_id: int) -> bool:
        return True


async def test_two_schedulers_at_once_materialise_each_recipient_once(database_url: str, tmp_path: Path) -> None:
    async with hub_runtime.running(_settings(database_url, tmp_path), workers=False) as rt:
        await seed.customers(rt.factory, 950)
        campaign_id = await seed.campaign(rt.factory)
        await schedule_now(rt, campaign_id)
        sc = context(rt)
        first, second = _Recorder(), _Recorder()
        a, b = (type(sc)(sc.factory, sc.senders, sc.throttle, q, sc.settings) for q in (first, second))  # type: ignore[arg-type]
        await asyncio.gather(scheduler.tick(a), scheduler.tick(b))
        # Lease expired or not, a forced second walk inserts nothing new.
        async with rt.factory() as session, session.begin():
            campaign = await session.get(Campaign, campaign_id)
            assert campaign is not None
            campaign.materialised_at, campaign.cursor, campaign.lease_until = None, 0, None
        assert await materialise.materialise(rt.factory, second, campaign_id, batch_size=100) == 0
        async with rt.factory() as session:
            total = (await session.execute(select(func.count()).select_from(CampaignRecipient))).scalar_one()
            per_customer = select(func.count(func.distinct(col(CampaignRecipient.customer_id))))
            distinct = (await session.execute(per_customer)).scalar_one()
        assert total == distinct == 950
        enqueued = [rid for q in (first, second) for _, ids, _ in q.jobs for rid in ids]
        assert len(enqueued) == len(set(enqueued)) == 950


async def test_each_timezone_gets_nine_local(database_url: str, tmp_path: Path) -> None:
    async with hub_runtime.running(_settings(database_url, tmp_path), workers=False) as rt:
        await seed.customers(rt.factory, 3)  # Rome, New York, Tokyo in turn
        campaign_id = await seed.campaign(rt.factory, local_send_time="09:00")
        start = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)
        async with rt.factory() as session, session.begin():
            from hub.campaigns import service

            await service.schedule(session, campaign_id, start, actor="test")
        recorder = _Recorder()
        sc = context(rt)
        await scheduler.tick(type(sc)(sc.factory, sc.senders, sc.throttle, recorder, sc.settings), now=start)  # type: ignore[arg-type]
        async with rt.factory() as session:
            ordered = select(CampaignRecipient).order_by(col(CampaignRecipient.customer_id))
            rows = (await session.execute(ordered)).scalars().all()
        local = [r.send_after.astimezone(ZoneInfo(zone)) for r, zone in zip(rows, seed.ZONES, strict=True)]  # type: ignore[union-attr]
        assert [(t.hour, t.minute) for t in local] == [(9, 0)] * 3
        assert [t.date().isoformat() for t in local] == ["2026-03-10", "2026-03-10", "2026-03-11"]
        # Tokyo's 09:00 (00:00 UTC) passed 30 minutes before the start: it goes the next morning.
        assert [at for _, _, at in sorted(recorder.jobs, key=lambda j: j[2] or start)] == sorted(
            r.send_after for r in rows)
        # Nothing is sent before its time even when a job runs early.
        from hub.campaigns.sending import send_batch

        ids = [r.id for r in rows if r.id is not None]
        tally = await send_batch(sc, campaign_id, ids, now=start)
        assert tally.claimed == 0
        assert isinstance(sc.queue, LocalBatchQueue)
