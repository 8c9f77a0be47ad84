"""Ingest throughput on SQLite against a floor measured in the same run.

Ingests N synthetic inbound messages (email, SMS and WhatsApp mixed, 10% duplicates) through the
real ingest path into a fresh SQLite file, then inserts the same message rows with bare batched
`sqlite3.executemany` into a table of the same shape. Prints messages/s of both and the ratio.

    python bench/ingest.py [--messages 20000] [--batch 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub import runtime as hub_runtime
from hub.core.envelopes import Address, AddressKind, Channel, Inbound
from hub.core.ingest import ingest_batch
from hub.settings import load_settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOTEL = {Channel.EMAIL: Address(AddressKind.EMAIL, "reception@hotel.test"),
         Channel.SMS: Address(AddressKind.PHONE, "+390612345678"),
         Channel.WHATSAPP: Address(AddressKind.WHATSAPP, "+390612345678")}


def synthetic(n: int, seed: int = 1) -> list[Inbound]:
    """n messages from ~n/4 customers; every tenth is a re-delivery of an earlier one."""
    rng = random.Random(seed)
    items: list[Inbound] = []
    for i in range(n):
        if i and i % 10 == 0:
            items.append(items[rng.randrange(len(items))])
            continue
        who = rng.randrange(max(n // 4, 1))
        channel = (Channel.EMAIL, Channel.SMS, Channel.WHATSAPP)[who % 3]
        if channel is Channel.EMAIL:
            sender = Address(AddressKind.EMAIL, f"guest{who}@example.com", f"Guest {who}")
        else:
            kind = AddressKind.PHONE if channel is Channel.SMS else AddressKind.WHATSAPP
            sender = Address(kind, f"+39347{who:07d}")
        body = f"Buongiorno, messaggio {i} per la camera {rng.randrange(100, 400)}. " * 3
        items.append(Inbound(
            channel=channel, external_id=f"{channel.value}-{i}", sender=sender, recipient=HOTEL[channel],
            received_at=T0 + timedelta(seconds=i), body_text=body, visible_text=body,
            subject=f"Richiesta {who}" if channel is Channel.EMAIL else None,
            raw=body.encode(),
        ))
    return items


async def ours(items: list[Inbound], folder: Path, batch: int) -> float:
    settings = load_settings(database_url=f"sqlite:///{folder / 'hub.db'}", data_dir=folder / "data")
    runtime = await hub_runtime.build(settings)
    # The core path alone: routing rules have their own benchmark (bench/rules.py).
    ctx = replace(runtime.ingest_context, handlers=())
    started = time.perf_counter()
    outcomes: dict[str, int] = {}
    for start in range(0, len(items), batch):
        for result in await ingest_batch(runtime.factory, items[start:start + batch], ctx):
            outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
    elapsed = time.perf_counter() - started
    await hub_runtime.close(runtime)
    print(f"  outcomes: {outcomes}")
    return len(items) / elapsed


TABLES = ("customer", "identity", "stagechange", "conversation", "rawinput", "message", "timelineentry",
          "domainevent")


def floor(folder: Path, batch: int, messages: int) -> float:
    """Bare stdlib sqlite3 writing exactly the rows our ingest wrote: same schema, executemany, WAL.

    Rows are read back from the hub's database, then inserted table by table into a fresh copy of
    the schema, committing every `batch` messages' worth of rows, as the hub does.
    """
    source = sqlite3.connect(folder / "hub.db")
    target = sqlite3.connect(folder / "floor.db")
    target.execute("PRAGMA journal_mode=WAL")
    target.execute("PRAGMA synchronous=NORMAL")
    for (sql,) in source.execute("SELECT sql FROM sqlite_master WHERE type IN ('table', 'index') AND sql NOT NULL"):
        target.execute(sql)
    data = {t: source.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}
    source.close()
    batches = max(messages // batch, 1)
    started = time.perf_counter()
    for n in range(batches):
        for table, rows in data.items():
            size = -(-len(rows) // batches)
            chunk = rows[n * size:(n + 1) * size]
            if chunk:
                marks = ", ".join("?" * len(chunk[0]))
                target.executemany(f"INSERT INTO {table} VALUES ({marks})", chunk)
        target.commit()
    elapsed = time.perf_counter() - started
    target.close()
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    items = synthetic(args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate = asyncio.run(ours(items, folder, args.batch))
        print(f"hub ingest (dedupe, identity, threading, raw, timeline, events): {rate:,.0f} msg/s")
        base = floor(folder, args.batch, len(items))
        print(f"floor (bare sqlite3 executemany of the same rows, same batches): {base:,.0f} msg/s")
        print(f"ratio: {rate / base:.3f}  (target >= 0.25)")


if __name__ == "__main__":
    main()
