"""5,000 replies through the outbox and the SMTP sender, against raw aiosmtplib with as many connections.

The sink is aiosmtpd in another process (this script started with `--sink PORT`). The hub side
writes the replies once (untimed); each round puts them back in the outbox unsent, then times the
in-process dispatcher draining it: claim (in batches), load, compose, send over the pooled
connections, mark sent. The floor sends the
very bytes the hub would send for the same messages (rendered beforehand, untimed) with N plain
aiosmtplib clients, one connection per task, `sendmail` (no flattening), in the same run: once
before the hub's run and once after, averaged. This process sets the garbage collector up as
`hub serve` and `hub worker` do (hub.ops.gcpolicy), for both sides; the sink keeps the defaults.
Run: `python bench/smtp_send.py [--count N] [--connections N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
from sqlalchemy import select, update
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.channels.email.inbound import ingest_raw_many
from hub.channels.email.smtp import wire
from hub.core import outbox
from hub.core.delivery import to_outbound
from hub.core.dispatch import InProcessQueue
from hub.core.jobs import BatchPace
from hub.core.replies import ReplyRequest, create_reply
from hub.ops import gcpolicy
from hub.settings import load_settings
from hub.store.models import Agent, Conversation, Message, OutboxItem

HOTEL = "reception@hotel.test"
GUESTS = 100


def run_sink(port: int) -> None:
    """The sink process: accept everything, as fast as aiosmtpd can."""
    from aiosmtpd.controller import Controller

    class Accept:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 2.0.0 Ok: queued"

    controller = Controller(Accept(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    controller.stop()


def start_sink() -> tuple[subprocess.Popen[str], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    proc = subprocess.Popen([sys.executable, __file__, "--sink", str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, port


async def _seed(rt: hub_runtime.Runtime, count: int) -> list[int]:
    """One conversation per guest, then `count` replies spread over them; returns the message ids."""
    mails = [(f"From: guest{n}@example.com\r\nTo: {HOTEL}\r\nSubject: Booking {n}\r\n"
              f"Message-ID: <g{n}@example.com>\r\n\r\nHello\r\n".encode(), f"seed{n}") for n in range(GUESTS)]
    results = await ingest_raw_many(rt, mails, mailbox=HOTEL)
    conversations = [r.ingest.conversation_id for r in results if r.ingest and r.ingest.conversation_id]
    ids: list[int] = []
    async with rt.factory() as session, session.begin():
        agent = Agent(email="bench@hotel.test", name="Bench")
        session.add(agent)
        await session.flush()
        loaded = [await session.get(Conversation, cid) for cid in conversations]
        for n in range(count):
            conversation = loaded[n % len(loaded)]
            assert conversation is not None
            message = await create_reply(session, conversation, agent, ReplyRequest(body=f"Reply {n}: see you soon."),
                                         mail_domain="hub.test", hub_address=HOTEL)
            assert message.id is not None
            ids.append(message.id)
        outbox.take_pending(session)  # not enqueued yet: the timed part enqueues them
    return ids


Wire = tuple[str, str, bytes]  # envelope sender, recipient, message bytes


@dataclass
class Round:
    """One round: the hub's rate, the floor's before and after it, and CPU ms per message of each side."""

    hub: float
    floors: list[float]
    hub_cpu_ms: float
    raw_cpu_ms: float
    sink_cpu_ms: tuple[float, float]  # the sink's CPU per message while serving the hub, and the floor

    @property
    def ratio(self) -> float:
        return self.hub / statistics.mean(self.floors)

    def __str__(self) -> str:
        return (f"raw aiosmtplib sendmail(bytes) {self.floors[0]:,.0f} before / {self.floors[1]:,.0f} after msg/s, "
                f"hub outbox + SmtpSender (SQLite) {self.hub:,.0f} msg/s -> ratio {self.ratio:.2f}; CPU ms/msg "
                f"hub {self.hub_cpu_ms:.3f}, raw client {self.raw_cpu_ms:.3f}, sink serving hub/raw "
                f"{self.sink_cpu_ms[0]:.3f}/{self.sink_cpu_ms[1]:.3f}")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed_raw(port: int, wires: list[Wire], connections: int, sink: int) -> tuple[float, float, float]:
    """(msg/s, CPU ms per message of this process, of the sink) of the floor."""
    cpu, sink_cpu = time.process_time(), process_cpu(sink)
    rate = await raw_rate(port, wires, connections)
    return rate, 1000 * (time.process_time() - cpu) / len(wires), 1000 * (process_cpu(sink) - sink_cpu) / len(wires)


async def measure(port: int, count: int, connections: int, sink: int, rounds: int) -> list[Round]:
    """Rounds of: raw aiosmtplib's msg/s, replies/s through outbox + dispatcher + SmtpSender, raw again.

    The floor runs on both sides of the hub's run, so drifting load on the machine weighs on both.
    The replies are written once; each round puts them back in the outbox as they were before
    their first send, and gives the dispatcher a fresh pace, as a worker starting up has.
    """
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(database_url=f"sqlite:///{tmp}/hub.db", data_dir=Path(tmp), redis_url=None,
                                 smtp_from=HOTEL, mail_domain="hub.test", smtp_host="127.0.0.1", smtp_port=port,
                                 smtp_pool_size=connections, inprocess_workers=connections)
        async with hub_runtime.running(settings, workers=False) as rt:
            ids = await _seed(rt, count)
            wires = await _wires(rt, ids)
            queue = hub_runtime.inprocess(rt)
            assert queue is not None
            queue.start()
            results = []
            for n in range(rounds):
                results.append(await _round(rt, queue, port, ids, wires, connections, sink))
                print(f"round {n + 1}: {results[-1]}; load {os.getloadavg()[0]:.2f}", flush=True)
    return results


async def _round(rt: hub_runtime.Runtime, queue: InProcessQueue, port: int, ids: list[int], wires: list[Wire],
                 connections: int, sink: int) -> Round:
    before, raw_cpu, sink_raw = await timed_raw(port, wires, connections, sink)
    items = await _requeue(rt, ids)
    rt.jobs.pace = BatchPace()
    start, cpu, sink_cpu = time.perf_counter(), time.process_time(), process_cpu(sink)
    for item_id in items:
        await queue.enqueue(item_id)
    await queue.drain()
    elapsed, hub_cpu = time.perf_counter() - start, time.process_time() - cpu
    sink_hub = 1000 * (process_cpu(sink) - sink_cpu) / len(ids)
    await _check_sent(rt, ids)
    await rt.extras["email.sender"].aclose()
    after, raw_cpu_after, sink_raw_after = await timed_raw(port, wires, connections, sink)
    return Round(len(ids) / elapsed, [before, after], 1000 * hub_cpu / len(ids), (raw_cpu + raw_cpu_after) / 2,
                 (sink_hub, (sink_raw + sink_raw_after) / 2))


async def _requeue(rt: hub_runtime.Runtime, ids: list[int]) -> list[int]:
    """The replies' messages and outbox rows as they were before their first send; the outbox ids."""
    async with rt.factory() as session, session.begin():
        await session.execute(update(Message).where(col(Message.id).in_(ids))
                              .values(delivery_status="queued", delivery_detail=None, provider_id=None))
        await session.execute(update(OutboxItem).values(status="queued", attempt=0, claimed_at=None, result={},
                                                        last_error=None, available_at=col(OutboxItem.created_at)))
        items = (await session.execute(select(col(OutboxItem.id)).order_by(col(OutboxItem.id)))).scalars().all()
    return [item_id for item_id in items if item_id is not None]


async def _wires(rt: hub_runtime.Runtime, ids: list[int]) -> list[Wire]:
    """What the hub will send for these messages, rendered the way its sender renders them."""
    async with rt.factory() as session:
        rows = (await session.execute(select(Message).where(col(Message.id).in_(ids)))).scalars().all()
        convs = {c.id: c for c in (await session.execute(select(Conversation))).scalars()}
    wires = []
    for row in rows:
        out = to_outbound(row, convs[row.conversation_id])
        built = wire(out, "hub.test")
        assert isinstance(built, tuple), "every reply of this bench is rendered without EmailMessage"
        wires.append((out.sender.value, out.recipient.value, built[0]))
    return wires


async def _check_sent(rt: hub_runtime.Runtime, ids: list[int]) -> None:
    async with rt.factory() as session:
        rows = (await session.execute(select(Message).where(col(Message.id).in_(ids)))).scalars().all()
    sent = sum(r.delivery_status == "sent" for r in rows)
    assert sent == len(ids), f"only {sent} of {len(ids)} sent"


async def raw_rate(port: int, messages: list[Wire], connections: int) -> float:
    """Messages per second of plain aiosmtplib clients, one connection per task."""
    queue: asyncio.Queue[Wire] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)

    async def worker() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
            while not queue.empty():
                sender, recipient, data = queue.get_nowait()
                await client.sendmail(sender, [recipient], data)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(messages) / (time.perf_counter() - start)


def main() -> None:
    """Print replies/s through the hub and messages/s of raw aiosmtplib, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=9, help="rounds of floor, hub, floor (the median counts)")
    parser.add_argument("--sink", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink is not None:
        run_sink(args.sink)
        return
    sink, port = start_sink()
    gcpolicy.tune_for_service()  # as the hub's own processes start (the floor runs under it too)
    print(f"{args.count} replies, {args.connections} connections, aiosmtpd sink in another process")
    try:
        rounds = asyncio.run(measure(port, args.count, args.connections, sink.pid, args.rounds))
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(10)
    # The floor swings by up to 2x within a run on this shared machine: the median round counts.
    print(f"ratio hub/raw, median of {len(rounds)} rounds: {statistics.median(r.ratio for r in rounds):.2f} "
          f"(target >= 0.8); CPU per message raw/hub: "
          f"{statistics.median(r.raw_cpu_ms / r.hub_cpu_ms for r in rounds):.2f}")


if __name__ == "__main__":
    main()
