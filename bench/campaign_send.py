"""Campaign send benchmark: N recipients, 2 `hub worker`s, an aiosmtpd sink in another process.

Prints msgs/s, the ratio against raw aiosmtplib sending the same rendered messages over the same
number of connections in the same run (target >= 0.8), and the peak RSS of the workers; with
`--materialise N` also the peak RSS of a process materialising N recipients (target < 200 MB).

    python bench/campaign_send.py --recipients 100000 --materialise 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402
from sqlmodel import col  # noqa: E402

from hub.campaigns import materialise, render, scheduler  # noqa: E402
from hub.campaigns.jobs import context  # noqa: E402
from hub.channels.email.smtp import wire  # noqa: E402
from hub.core.envelopes import Address, AddressKind, Channel, Outbound  # noqa: E402
from hub.store.models import CampaignRecipient, Conversation, Message  # noqa: E402
from hub.store.types import utcnow  # noqa: E402
from tests.integration.campaigns import seed  # noqa: E402
from tests.integration.campaigns.common import schedule_now, store, wait_completed  # noqa: E402
from tests.integration.campaigns.harness import Sink, Worker, redis_server, worker_env  # noqa: E402
from tests.support.services import postgres_database  # noqa: E402

POOL = 4
WORKERS = 2


async def started(tmp: Path, count: int, within: float = 120.0) -> None:
    """Wait until every worker has run a scheduler tick (imports and migrations are behind it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all("'started': [" in log_text(tmp / f"w{k}.log") for k in range(count)):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("workers did not start")


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared: read figures against them)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def total_cpu(pids: list[int]) -> float:
    """CPU seconds of those processes still alive."""
    return sum(cpu_seconds(pid) for pid in pids if os.path.exists(f"/proc/{pid}"))


async def postgres_cpu(rt: object) -> float:
    """CPU seconds of the live PostgreSQL backends serving the bench database (pooled connections)."""
    async with rt.factory() as session:  # type: ignore[attr-defined]
        pids = (await session.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
                ).scalars().all()
    return total_cpu([int(pid) for pid in pids])


Wire = tuple[str, str, bytes]  # sender, recipient, the message as it goes on the wire


async def raw_send(port: int, messages: list[Wire], connections: int) -> float:
    """aiosmtplib alone: the same bytes over `connections` connections; returns seconds."""
    queue: asyncio.Queue[Wire] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)

    async def one() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while not queue.empty():
            sender, recipient, data = queue.get_nowait()
            await client.sendmail(sender, [recipient], data)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return time.perf_counter() - start


def wire_bytes(item: Outbound, domain: str) -> bytes:
    """The bytes the hub's SMTP sender puts on the wire for this message."""
    out = wire(item, domain)
    return out[0] if isinstance(out, tuple) else out.as_bytes(policy=email.policy.SMTP)


async def rendered(rt: object, campaign_id: int) -> list[Wire]:
    """Every message the campaign sent, rebuilt as the worker built it (headers, reply token), as wire bytes."""
    settings = rt.settings  # type: ignore[attr-defined]
    async with rt.factory() as session:  # type: ignore[attr-defined]
        rows = await session.stream(
            select(Message, CampaignRecipient.id, Conversation.thread_token)
            .join(CampaignRecipient, col(CampaignRecipient.message_id) == col(Message.id))
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(col(CampaignRecipient.campaign_id) == campaign_id).execution_options(yield_per=2000))
        out = []
        async for m, recipient_id, token in rows:
            links = render.Links(settings.secret_key, settings.public_url, settings.mail_domain, recipient_id)
            item = Outbound(channel=Channel.EMAIL, message_id=m.id or 0, sender=Address(AddressKind.EMAIL, m.sender),
                            recipient=Address(AddressKind.EMAIL, m.recipient), body_text=m.body_text, subject=m.subject,
                            body_html=m.body_html, external_id=m.external_id,
                            headers=render.email_headers(links, campaign_id), meta={"thread_token": token})
            out.append((m.sender, m.recipient, wire_bytes(item, settings.mail_domain)))
        return out


async def sent_between(rt: object, campaign_id: int) -> tuple[datetime, datetime]:
    """When the campaign's first and last messages were accepted (recorded right after the relay's 250)."""
    async with rt.factory() as session:  # type: ignore[attr-defined]
        found = await session.execute(select(func.min(CampaignRecipient.sent_at), func.max(CampaignRecipient.sent_at))
                                      .where(col(CampaignRecipient.campaign_id) == campaign_id))
        first, last = found.one()
        return first, last


async def run_campaign(rt: object, url: str, redis_url: str, n: int, tmp: Path) -> tuple[float, int]:
    """Send the campaign with 2 workers to a sink process; prints its figures, returns (msg/s, campaign id)."""
    campaign_id = await seed.campaign(rt.factory)  # type: ignore[attr-defined]
    sink = Sink(tmp / "sink.jsonl")
    try:
        env = worker_env(url, redis_url, sink.port, tmp / "data", HUB_SMTP_POOL_SIZE=str(POOL),
                         HUB_CAMPAIGN_LEASE_SECONDS="300", HUB_CAMPAIGN_STALE_SECONDS="120")
        workers = [Worker(env, tmp / f"w{k}.log") for k in range(WORKERS)]
        try:
            await started(tmp, WORKERS)
            idle = [cpu_seconds(w.pid) for w in workers]
            start, scheduled = time.perf_counter(), utcnow()
            await schedule_now(rt, campaign_id)  # type: ignore[arg-type]
            final = await wait_completed(rt, campaign_id, within=3600)  # type: ignore[arg-type]
            end_to_end = time.perf_counter() - start
            first, last = await sent_between(rt, campaign_id)
            took = (last - scheduled).total_seconds()
            rss = [round(peak_rss_mb(w.pid), 1) for w in workers]
            cpu = [round(cpu_seconds(w.pid) - before, 1) for w, before in zip(workers, idle, strict=True)]
            sink_cpu, db_cpu = cpu_seconds(sink.proc.pid), await postgres_cpu(rt)
            jobs = [log_text(tmp / f"w{k}.log").count("\\u2190 campaign:") for k in range(WORKERS)]
        finally:
            for w in workers:
                w.stop()
    finally:
        sink.stop()
    print(f"campaign: {final}, last one sent {took:.1f}s after scheduling = {n / took:.0f} msg/s "
          f"(first one after {(first - scheduled).total_seconds():.1f}s; {end_to_end:.1f}s until seen completed); "
          f"worker peak RSS {rss} MB; load {load()}")
    print(f"  CPU s during the campaign: workers {cpu} ({1000 * sum(cpu) / n:.2f} ms/msg), "
          f"sink {sink_cpu:.1f}, PostgreSQL backends {db_cpu:.1f}; batch jobs run per worker {jobs}")
    return n / took, campaign_id


async def run_raw(messages: list[Wire], tmp: Path) -> float:
    """The floor: the same messages with aiosmtplib alone to a fresh sink process; prints and returns msg/s."""
    sink = Sink(tmp / "raw.jsonl")
    try:
        own = time.process_time()
        took = await raw_send(sink.port, messages, WORKERS * POOL)
        own = time.process_time() - own
        sink_cpu = cpu_seconds(sink.proc.pid)
    finally:
        sink.stop()
    print(f"raw aiosmtplib: {len(messages)} in {took:.1f}s = {len(messages) / took:.0f} msg/s "
          f"({WORKERS * POOL} connections); CPU s: client {own:.1f}, sink {sink_cpu:.1f}; load {load()}")
    return len(messages) / took


async def send_bench(n: int, tmp: Path) -> None:
    async with postgres_database() as url:
        with redis_server() as redis:
            async with store(url, tmp) as rt:
                t0 = time.perf_counter()
                await seed.customers(rt.factory, n, chunk=5000)
                print(f"seeded {n} customers in {time.perf_counter() - t0:.1f}s; load {load()}")
                rate, campaign_id = await run_campaign(rt, url, redis.url, n, tmp)
                messages = await rendered(rt, campaign_id)
            raw_rate = await run_raw(messages, tmp)
            print(f"ratio campaign/raw = {rate / raw_rate:.2f} (target >= 0.8)")


class Discard:
    """A BatchQueue that drops the batches: only materialisation is measured."""

    async def enqueue(self, campaign_id: int, ids: object, *, tag: str, at: object = None) -> bool:
        return True

    async def busy(self, campaign_id: int) -> bool:
        return True


async def materialise_only(url: str, campaign_id: int, tmp: Path) -> None:
    """In a fresh process: walk the campaign's segment into recipient rows; print time and peak RSS."""
    async with store(url, tmp) as rt:
        before = peak_rss_mb(os.getpid())
        t0, cpu0 = time.perf_counter(), time.process_time()
        made = await materialise.materialise(rt.factory, Discard(), campaign_id, batch_size=1000, lease_seconds=600)
        print(f"materialised {made} recipients in {time.perf_counter() - t0:.1f}s "
              f"(CPU {time.process_time() - cpu0:.1f}s); peak RSS of the materialising process "
              f"{peak_rss_mb(os.getpid()):.0f} MB (after start-up: {before:.0f} MB); load {load()}")


async def materialise_bench(n: int, tmp: Path) -> None:
    async with postgres_database() as url:
        async with store(url, tmp) as rt:
            t0 = time.perf_counter()
            await seed.customers(rt.factory, n, chunk=5000)
            print(f"seeded {n} customers in {time.perf_counter() - t0:.1f}s; load {load()}")
            campaign_id = await seed.campaign(rt.factory)
            await schedule_now(rt, campaign_id)
            await scheduler.start_due(context(rt), utcnow())
        child = await asyncio.create_subprocess_exec(sys.executable, __file__, "--materialise-only", url,
                                                     str(campaign_id), str(tmp))
        await child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--materialise", type=int, default=0, help="also materialise this many (RSS check)")
    parser.add_argument("--keep", type=Path, help="keep worker logs and sink records in this directory")
    parser.add_argument("--materialise-only", nargs=3, metavar=("URL", "CAMPAIGN", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.materialise_only:
        url, campaign_id, where = args.materialise_only
        asyncio.run(materialise_only(url, int(campaign_id), Path(where)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.recipients:
            asyncio.run(send_bench(args.recipients, tmp))
        if args.materialise:
            asyncio.run(materialise_bench(args.materialise, tmp / "m"))


if __name__ == "__main__":
    main()
