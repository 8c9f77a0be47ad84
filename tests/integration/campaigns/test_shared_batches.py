"""With a queue shared by workers, a worker with spare slots pulls due rows of the campaign from the table."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.campaigns import scheduler
from hub.campaigns.jobs import context
from hub.campaigns.sending import send_batch
from hub.settings import load_settings
from hub.store.models import CampaignRecipient
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import KeptBatches, schedule_now
from tests.support.smtp_sink import SmtpSink

RECIPIENTS = 130


async def test_an_idle_worker_pulls_rows_another_holds_and_each_goes_once(
    database_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    settings = load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                             mail_domain="hub.test", smtp_from="offers@hotel.test", smtp_host="127.0.0.1",
                             smtp_port=sink.port, campaign_chunk_size=10, campaign_parallel_chunks=2)
    async with hub_runtime.running(settings, workers=False) as rt:
        await seed.customers(rt.factory, RECIPIENTS)
        campaign_id = await seed.campaign(rt.factory)
        await schedule_now(rt, campaign_id)
        sc, batches = context(rt), KeptBatches()
        await scheduler.tick(replace(sc, queue=batches))  # type: ignore[arg-type]
        # Two workers on one queue: the first was handed every batch and has no slot free, the second none.
        busy = replace(sc, queue=batches, share=True, worker="busy:1", slots=asyncio.Semaphore(2), pulled_below={})
        idle = replace(sc, queue=batches, share=True, worker="idle:2", slots=asyncio.Semaphore(2), pulled_below={})
        for _ in range(2):
            await busy.slots.acquire()
        held = sorted(batches.ids)
        waiting = [asyncio.create_task(send_batch(busy, campaign_id, held[start:start + 20]))
                   for start in range(0, len(held), 20)]
        pulled = await send_batch(idle, campaign_id, [])
        for _ in range(2):
            busy.slots.release()
        late = await asyncio.gather(*waiting)
        async with rt.factory() as session:
            statuses = dict((await session.execute(
                select(col(CampaignRecipient.status), func.count())
                .where(col(CampaignRecipient.campaign_id) == campaign_id)
                .group_by(col(CampaignRecipient.status)))).all())
    assert statuses == {"sent": RECIPIENTS}
    assert Counter(Counter(rcpt for e in sink.sink.envelopes for rcpt in e.rcpt_tos).values()) == {1: RECIPIENTS}
    # The idle worker sent the rows it was never handed; the batches found them taken when they ran.
    assert (pulled.claimed, pulled.sent, [t.claimed for t in late]) == (RECIPIENTS, RECIPIENTS, [0] * len(late))
    # Each pull looked only below the rows pulled before it, down to the campaign's first row.
    assert idle.pulled_below == {campaign_id: held[0]} and busy.pulled_below == {}
