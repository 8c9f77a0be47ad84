"""Crashes: a worker killed with SIGKILL mid-campaign, and Redis restarted (queue lost) mid-campaign."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from hub.settings import load_settings
from hub.store.models import CampaignRecipient
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import schedule_now, store, wait_completed, wait_sent
from tests.integration.campaigns.harness import Sink, Worker, redis_server, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]

RECIPIENTS = 1500


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_kill_9_one_worker_then_restart(database_url: str, tmp_path: Path) -> None:
    with redis_server() as redis:
        sink = Sink(tmp_path / "sink.jsonl", delay=0.01)
        async with store(database_url, tmp_path) as rt:
            await seed.customers(rt.factory, RECIPIENTS)
            campaign_id = await seed.campaign(rt.factory)
            env = worker_env(database_url, redis.url, sink.port, tmp_path / "data")
            workers = [Worker(env, tmp_path / f"worker{n}.log") for n in range(2)]
            try:
                await schedule_now(rt, campaign_id)
                await wait_sent(rt, campaign_id, 300)
                victim = workers[0]
                victim.kill9()
                async with rt.factory() as session:
                    in_flight = {str(a) for a in (await session.execute(
                        select(col(CampaignRecipient.address)).where(
                            col(CampaignRecipient.status) == "sending",
                            col(CampaignRecipient.worker) == f"{socket.gethostname()}:{victim.pid}"))).scalars()}
                # The sink may still be finishing a DATA the killed worker sent (its 250 never read):
                # such a message was accepted, so let the sink write it down before looking.
                await asyncio.sleep(1.0)
                accepted_at_kill = set(sink.counts())
                workers[0] = Worker(env, tmp_path / "worker0-restarted.log")
                final = await wait_completed(rt, campaign_id)
                counts = sink.counts()
                duplicates = {rcpt: n for rcpt, n in counts.items() if n > 1}
                print(f"\nin flight in the killed worker: {len(in_flight)}; duplicates: {len(duplicates)}")
                assert final == {"sent": RECIPIENTS}
                assert len(counts) == RECIPIENTS
                assert len(duplicates) <= len(in_flight) and set(duplicates) <= in_flight
                # A message the SMTP server had not accepted before the kill is sent exactly once.
                assert all(counts[a] == 1 for a in in_flight - accepted_at_kill)
            finally:
                for worker in workers:
                    worker.stop()
                sink.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_redis_restarted_mid_campaign_loses_nothing(database_url: str, tmp_path: Path) -> None:
    with redis_server() as redis:
        sink = Sink(tmp_path / "sink.jsonl", delay=0.01)
        async with store(database_url, tmp_path) as rt:
            await seed.customers(rt.factory, RECIPIENTS)
            campaign_id = await seed.campaign(rt.factory)
            env = worker_env(database_url, redis.url, sink.port, tmp_path / "data")
            workers = [Worker(env, tmp_path / f"worker{n}.log") for n in range(2)]
            try:
                await schedule_now(rt, campaign_id)
                await wait_sent(rt, campaign_id, 300)
                redis.stop()  # every queued job is gone with it (no persistence)
                await asyncio.sleep(2)
                redis.start()
                # A worker whose Redis vanished may exit; a supervisor (systemd, k8s) restarts it.
                restarted = 0
                for n, worker in enumerate(workers):
                    await asyncio.sleep(1)
                    if worker.proc.poll() is not None:
                        worker.stop()
                        workers[n] = Worker(env, tmp_path / f"worker{n}-restarted.log")
                        restarted += 1
                print(f"\nworkers restarted after the Redis restart: {restarted}")
                final = await wait_completed(rt, campaign_id)
                counts = sink.counts()
                duplicates = sum(n - 1 for n in counts.values())
                print(f"duplicates: {duplicates}")
                assert final == {"sent": RECIPIENTS}
                assert len(counts) == RECIPIENTS  # nothing lost
                # Only a worker that died can duplicate, and at most what it had claimed (its chunks).
                limits = load_settings(database_url=database_url, redis_url=redis.url)
                assert duplicates <= restarted * limits.campaign_parallel_chunks * limits.campaign_chunk_size
            finally:
                for worker in workers:
                    worker.stop()
                sink.stop()
