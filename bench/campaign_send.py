"""Campaign send benchmark: N recipients, 2 `hub worker`s, an aiosmtpd sink in another process.

Prints msgs/s, the ratio against raw aiosmtplib sending the same rendered messages over the same
number of connections in the same run (target >= 0.8), and the peak RSS of the workers; with
`--materialise N` also the peak RSS of a process materialising N recipients (target < 200 MB).

    python bench/campaign_send.py --recipients 100000 --materialise 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlmodel import col  # noqa: E402

from hub.campaigns import materialise  # noqa: E402
from hub.campaigns.jobs import context  # noqa: E402
from hub.channels.email.smtp import compose  # noqa: E402
from hub.core.envelopes import Address, AddressKind, Channel, Outbound  # noqa: E402
from hub.store.models import CampaignRecipient, Message  # noqa: E402
from tests.integration.campaigns import seed  # noqa: E402
from tests.integration.campaigns.common import schedule_now, store, wait_completed  # noqa: E402
from tests.integration.campaigns.harness import Sink, Worker, redis_server, worker_env  # noqa: E402
from tests.support.services import postgres_database  # noqa: E402

POOL = 4
WORKERS = 2


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def raw_send(port: int, messages: list[object], connections: int) -> float:
    """aiosmtplib alone: the same messages over `connections` connections; returns seconds."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)

    async def one() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while not queue.empty():
            await client.send_message(queue.get_nowait())  # type: ignore[arg-type]
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return time.perf_counter() - start


async def rendered(rt: object, campaign_id: int, domain: str) -> list[object]:
    async with rt.factory() as session:  # type: ignore[attr-defined]
        joined = select(Message).join(CampaignRecipient, col(CampaignRecipient.message_id) == col(Message.id))
        rows = await session.execute(joined.where(col(CampaignRecipient.campaign_id) == campaign_id))
        out = []
        for m in rows.scalars():
            item = Outbound(channel=Channel.EMAIL, message_id=m.id or 0, sender=Address(AddressKind.EMAIL, m.sender),
                            recipient=Address(AddressKind.EMAIL, m.recipient), body_text=m.body_text, subject=m.subject,
                            body_html=m.body_html, external_id=m.external_id)
            out.append(compose(item, domain))
        return out


async def send_bench(n: int, tmp: Path) -> None:
    async with postgres_database() as url:
        with redis_server() as redis:
            sink = Sink(tmp / "sink.jsonl")
            async with store(url, tmp) as rt:
                t0 = time.perf_counter()
                await seed.customers(rt.factory, n)
                print(f"seeded {n} customers in {time.perf_counter() - t0:.1f}s")
                campaign_id = await seed.campaign(rt.factory)
                env = worker_env(url, redis.url, sink.port, tmp / "data", HUB_SMTP_POOL_SIZE=str(POOL),
                                 HUB_CAMPAIGN_LEASE_SECONDS="300", HUB_CAMPAIGN_STALE_SECONDS="120")
                workers = [Worker(env, tmp / f"w{k}.log") for k in range(WORKERS)]
                try:
                    await asyncio.sleep(3)  # let both workers start
                    start = time.perf_counter()
                    await schedule_now(rt, campaign_id)
                    final = await wait_completed(rt, campaign_id, within=3600)
                    took = time.perf_counter() - start
                    rss = [peak_rss_mb(w.pid) for w in workers]
                finally:
                    for w in workers:
                        w.stop()
                rate = n / took
                print(f"campaign: {final} in {took:.1f}s = {rate:.0f} msg/s; worker peak RSS {rss} MB")
                messages = await rendered(rt, campaign_id, "hub.test")
            sink.stop()
            raw_sink = Sink(tmp / "raw.jsonl")
            raw_took = await raw_send(raw_sink.port, messages, WORKERS * POOL)
            raw_sink.stop()
            raw_rate = len(messages) / raw_took
            print(f"raw aiosmtplib: {len(messages)} in {raw_took:.1f}s = {raw_rate:.0f} msg/s "
                  f"({WORKERS * POOL} connections)")
            print(f"ratio campaign/raw = {rate / raw_rate:.2f} (target >= 0.8)")


async def materialise_bench(n: int, tmp: Path) -> None:
    async with postgres_database() as url, store(url, tmp) as rt:
        t0 = time.perf_counter()
        await seed.customers(rt.factory, n, chunk=5000)
        print(f"seeded {n} customers in {time.perf_counter() - t0:.1f}s")
        campaign_id = await seed.campaign(rt.factory)
        await schedule_now(rt, campaign_id)
        from hub.campaigns import scheduler

        sc = context(rt)
        await scheduler.start_due(sc, __import__("hub.store.types", fromlist=["utcnow"]).utcnow())

        class Discard:
            async def enqueue(self, *args: object, **kw: object) -> bool:
                return True

            async def busy(self, campaign_id: int) -> bool:
                return True

        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        made = await materialise.materialise(rt.factory, Discard(), campaign_id, batch_size=1000,  # type: ignore[arg-type]
                                             lease_seconds=600)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"materialised {made} recipients in {time.perf_counter() - t0:.1f}s; "
              f"peak RSS of this process {peak:.0f} MB (before materialising: {before:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--materialise", type=int, default=0, help="also materialise this many (RSS check)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.recipients:
            asyncio.run(send_bench(args.recipients, Path(tmp)))
        if args.materialise:
            asyncio.run(materialise_bench(args.materialise, Path(tmp) / "m"))


if __name__ == "__main__":
    main()
