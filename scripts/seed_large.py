"""Seed a large inbox for benchmarks: N messages over N/10 customers, with COPY on PostgreSQL.

Usage: python scripts/seed_large.py --database-url postgresql://postgres@127.0.0.1:5432/hub_bench \
           --messages 1000000 [--recreate]

Rows are generated deterministically (seeded RNG) in batches and streamed with asyncpg's COPY;
on SQLite they go in with batched executemany. The search index is built after the load (a GIN
index builds much faster in bulk than row by row), then the tables are analysed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub import accounts
from hub.settings import load_settings
from hub.store import migrate
from hub.store.engine import make_engine, make_session_factory
from hub.store.models import Conversation, Customer, Identity, Message, Team, TeamMember, TimelineEntry
from hub.web import search

BATCH = 20_000
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 365 * 24 * 3600
FIRST = ["Giulia", "Marco", "Sara", "Luca", "Anna", "Paolo", "Chiara", "John", "Emma", "Hans", "Marie", "Carlos",
         "Yuki", "Olivia", "Matteo", "Francesca", "Lorenzo", "Sofia", "Pierre", "Ingrid"]
LAST = ["Bianchi", "Rossi", "Ferrari", "Esposito", "Romano", "Smith", "Müller", "Dubois", "García", "Tanaka",
        "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Conti", "Gallo", "Costa", "Fontana", "Moretti"]
PHRASES = [
    "could we check out later on Sunday", "vorremmo prenotare un tavolo per due stasera",
    "la doccia della stanza non scarica bene", "is there a parking space for a small car",
    "arriviamo verso le 22 la reception è aperta", "the air conditioning is not working",
    "grazie per la splendida accoglienza", "can you book a taxi to the airport", "serve un cuscino in più",
    "what time is breakfast served", "il wifi in camera non funziona", "we would like a quiet room",
    "possiamo portare il cane", "please send the invoice to my company", "colazione in camera alle otto",
]
STATUSES = ["open"] * 3 + ["pending", "resolved", "resolved", "resolved", "resolved", "resolved", "snoozed"]
CHANNELS = ["email", "email", "sms", "whatsapp"]


def text_of(rng: random.Random, n: int) -> tuple[str, str]:
    """A subject and a body; every message carries a booking code, so rare terms exist to search for."""
    code, room = n % 500_000, rng.randint(100, 499)
    body = f"{rng.choice(PHRASES)}. {rng.choice(PHRASES)}. Prenotazione BK{code:06d} stanza {room}."
    return rng.choice(PHRASES)[:40].capitalize(), body


def when(rng: random.Random) -> datetime:
    return START + timedelta(seconds=rng.randrange(SPAN_SECONDS))


def customers(count: int, rng: random.Random) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for cid in range(1, count + 1):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        created = when(rng)
        customer = {"id": cid, "display_name": name, "language": rng.choice(["it", "en"]), "timezone": "Europe/Rome",
                    "lifecycle_stage": rng.choice(["prospect", "cultivable", "key", "advocate", "sub_zero"]),
                    "tags": [], "attributes": {}, "created_at": created, "updated_at": created,
                    "last_contact_at": created}
        if cid % 2:
            identity = {"id": cid, "customer_id": cid, "kind": "email", "value": f"guest{cid}@example.com",
                        "created_at": created}
        else:
            identity = {"id": cid, "customer_id": cid, "kind": "phone", "value": f"+39347{cid:07d}",
                        "created_at": created}
        yield customer, identity


def plan_conversations(n_customers: int, n_messages: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """(conversation id, customer id, message count): ~1.5 conversations per customer."""
    n_conv = max(int(n_customers * 1.5), 1)
    owners = [1 + (i % n_customers) for i in range(n_conv)]
    weights = [rng.random() ** 2 + 0.05 for _ in range(n_conv)]
    total = sum(weights)
    counts = [max(1, int(n_messages * w / total)) for w in weights]
    counts[0] += n_messages - sum(counts)
    if counts[0] < 1:
        counts[0] = 1
    return [(i + 1, owners[i], counts[i]) for i in range(n_conv)]


def conversation_rows(plan: Sequence[tuple[int, int, int]], rng: random.Random, agents: list[int],
                      teams: list[int]) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
    """Each conversation with its messages and timeline entries."""
    message_id = 0
    for conv_id, customer_id, count in plan:
        channel = rng.choice(CHANNELS)
        start = when(rng)
        moments = sorted(start + timedelta(minutes=rng.randrange(60 * 24 * 20)) for _ in range(count))
        subject = rng.choice(PHRASES)[:60] if channel == "email" else None
        messages, entries = [], []
        for at in moments:
            message_id += 1
            direction = "in" if rng.random() < 0.6 else ("out" if rng.random() < 0.85 else "note")
            _, body = text_of(rng, message_id)
            messages.append({
                "id": message_id, "conversation_id": conv_id, "customer_id": customer_id, "direction": direction,
                "channel": channel, "external_id": f"seed-{message_id}" if direction == "in" else None,
                "sender": "guest" if direction == "in" else "reception", "recipient": "hotel",
                "subject": subject, "body_text": body, "visible_text": body, "thread_refs": [], "flags": [],
                "headers": {}, "delivery_status": "delivered" if direction == "out" else None, "created_at": at})
            entries.append({
                "id": message_id, "customer_id": customer_id, "conversation_id": conv_id,
                "kind": "note" if direction == "note" else "message", "ref_id": message_id, "channel": channel,
                "summary": body[:200], "data": {"direction": direction}, "occurred_at": at})
        status = rng.choice(STATUSES)
        conversation = {
            "id": conv_id, "customer_id": customer_id, "channel": channel, "subject": subject, "status": status,
            "assignee_id": rng.choice(agents) if rng.random() < 0.5 else None,
            "team_id": rng.choice(teams) if rng.random() < 0.6 else None,
            "priority": rng.choice(["normal"] * 6 + ["low", "high", "urgent"]), "tags": [],
            "thread_token": secrets.token_hex(8), "created_at": moments[0], "last_message_at": moments[-1],
            "updated_at": moments[-1],
            "snoozed_until": moments[-1] + timedelta(days=2) if status == "snoozed" else None}
        yield conversation, messages, entries


class Writer:
    """Buffers rows per table and flushes them with COPY (PostgreSQL) or executemany (SQLite)."""

    def __init__(self, engine: AsyncEngine, conn: asyncpg.Connection | None) -> None:
        self.engine, self.conn = engine, conn
        self.buffers: dict[str, list[dict[str, Any]]] = {}
        self.counts: dict[str, int] = {}

    async def add(self, table: Any, row: dict[str, Any]) -> None:
        name = table.__tablename__
        self.buffers.setdefault(name, []).append(row)
        if len(self.buffers[name]) >= BATCH:
            await self.flush(table)

    async def flush(self, table: Any) -> None:
        name = table.__tablename__
        for parent in PARENTS.get(name, ()):  # foreign keys: parents' rows go in first
            await self.flush(parent)
        rows = self.buffers.pop(name, [])
        if not rows:
            return
        columns = [c.name for c in table.__table__.columns]
        missing = [c.name for c in table.__table__.columns if not c.nullable and c.name not in rows[0]]
        assert not missing, f"{name}: no value for NOT NULL columns {missing}"
        records = [tuple(_db_value(r.get(c)) for c in columns) for r in rows]
        if self.conn is not None:
            await self.conn.copy_records_to_table(name, records=records, columns=columns)
        else:
            async with self.engine.begin() as sa_conn:
                marks = ", ".join(f":{c}" for c in columns)
                await sa_conn.execute(text(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})"),
                                      [dict(zip(columns, rec, strict=True)) for rec in _sqlite_records(records)])
        self.counts[name] = self.counts.get(name, 0) + len(rows)


PARENTS: dict[str, tuple[Any, ...]] = {"message": (Conversation,), "timelineentry": (Conversation, Message)}


def _db_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _sqlite_records(records: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for record in records:
        yield tuple(v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v for v in record)


async def staff(engine: AsyncEngine) -> tuple[list[int], list[int]]:
    """Ten agents in three teams and an admin (bench@hotel.test, password shown by the bench)."""
    factory = make_session_factory(engine)
    agents, teams = [], []
    async with factory() as session, session.begin():
        admin = await accounts.add_agent(session, "bench@hotel.test", role="admin", password="bench-password-1")
        assert admin.id is not None
        for name in ("Reception", "Housekeeping", "Maintenance"):
            team = Team(name=name)
            session.add(team)
            await session.flush()
            assert team.id is not None
            teams.append(team.id)
        for n in range(10):
            agent = await accounts.add_agent(session, f"agent{n}@hotel.test", role="agent", password="bench-password-1")
            assert agent.id is not None
            agents.append(agent.id)
            session.add(TeamMember(team_id=teams[n % 3], agent_id=agent.id))
    return agents, teams


async def _fix_sequences(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as conn:
        for table in ("customer", "identity", "conversation", "message", "timelineentry"):
            await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"(SELECT coalesce(max(id), 1) FROM {table}))"))


async def seed(database_url: str, n_messages: int, n_customers: int, seed_value: int = 11) -> dict[str, int]:
    """Load the data set and build the indexes; returns the row counts."""
    settings = load_settings(database_url=database_url)
    engine = make_engine(settings)
    await migrate.upgrade(engine)
    agents, teams = await staff(engine)
    rng = random.Random(seed_value)
    conn = await asyncpg.connect(database_url.replace("+asyncpg", "")) if not settings.is_sqlite else None
    writer = Writer(engine, conn)
    try:
        for customer, identity in customers(n_customers, rng):
            await writer.add(Customer, customer)
            await writer.add(Identity, identity)
        await writer.flush(Customer)
        await writer.flush(Identity)
        for conversation, messages, entries in conversation_rows(
                plan_conversations(n_customers, n_messages, rng), rng, agents, teams):
            await writer.add(Conversation, conversation)
            for message in messages:
                await writer.add(Message, message)
            for entry in entries:
                await writer.add(TimelineEntry, entry)
        for table in (Conversation, Message, TimelineEntry):
            await writer.flush(table)
    finally:
        if conn is not None:
            await conn.close()
    await _fix_sequences(engine)
    await search.ensure_index(engine)
    # VACUUM (not only ANALYZE) sets the visibility map, as autovacuum would on a live database, so
    # the inbox counts run as index-only scans; VACUUM cannot run inside a transaction block.
    async with engine.connect() as sa_conn:
        autocommit = await sa_conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    await engine.dispose()
    return writer.counts


async def recreate(database_url: str) -> None:
    """Drop and create the PostgreSQL database named in the URL."""
    base, name = database_url.rsplit("/", 1)
    admin = create_async_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hub_bench")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=None, help="default: messages / 10")
    parser.add_argument("--recreate", action="store_true", help="drop and create the PostgreSQL database first")
    args = parser.parse_args()
    url = load_settings(database_url=args.database_url).database_url
    if args.recreate and not url.startswith("sqlite"):
        asyncio.run(recreate(url))
    started = time.perf_counter()
    counts = asyncio.run(seed(url, args.messages, args.customers or max(args.messages // 10, 1)))
    print(f"seeded {counts} in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
