"""Ingest writes its batches at the driver; what it stores must be exactly what SQLAlchemy would store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, insert, select

from hub.core.envelopes import Flag
from hub.core.ingest import Outcome, ingest_batch, set_status
from hub.runtime import Runtime
from hub.store.bulk import DriverStatement
from hub.store.ids import allocate_many
from hub.store.models import (
    Conversation,
    Customer,
    DomainEvent,
    Identity,
    Message,
    RawInput,
    StageChange,
    TimelineEntry,
    table,
)
from tests.support.builders import T0, email, sms

# Columns under a unique index get a marker in the copy; ids are the database's.
UNIQUE = {"message": "external_id", "conversation": "thread_token", "identity": "value"}
MODELS = (Customer, Identity, StageChange, Conversation, RawInput, Message, TimelineEntry, DomainEvent)


def batch() -> list[Any]:
    """New and returning guests, refs, flags, headers, non-ASCII text, a message with no raw bytes."""
    first = email("<a1@example.com>", "Giulia@Example.com", subject="Camera 12 — asciugamani", body="Grazie ✓")
    return [
        first,
        replace(email("<a2@example.com>", "giulia@example.com", subject="Re: Camera 12 — asciugamani",
                      refs=("<a1@example.com>",), at=T0 + timedelta(minutes=5)),
                flags=frozenset({Flag.AUTOREPLY, Flag.BULK}), headers=(("X-Mailer", "Thunderbird"), ("Lang", "it"))),
        sms("SM1", "+39 347 111 2233", body="Arrivo alle 23:30", at=T0 + timedelta(minutes=7, microseconds=1)),
        replace(sms("SM2", "+393471112233", body="Ok", at=T0 + timedelta(hours=1)), raw=None),
        first,
    ]


async def stored_rows(rt: Runtime, model: type) -> list[tuple[Any, ...]]:
    """Rows exactly as the driver returns them, by id."""
    async with rt.engine.connect() as conn:
        name = table(model).name
        return [tuple(row) for row in await conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY id")]


async def copy_through_sqlalchemy(rt: Runtime, model: type) -> None:
    """Read each row through the column types and write it again with SQLAlchemy Core."""
    source: Table = table(model)
    async with rt.factory() as session, session.begin():
        rows = (await session.execute(select(source).order_by(source.c.id))).mappings().all()
        copies = []
        for row in rows:
            values = {k: v for k, v in row.items() if k != "id"}
            if (unique := UNIQUE.get(source.name)) is not None:
                values[unique] = f"copy-{values[unique]}"
            copies.append(values)
        await session.execute(insert(source), copies)


async def test_driver_batches_store_what_sqlalchemy_stores(runtime: Runtime) -> None:
    ctx = replace(runtime.ingest_context, handlers=())
    first = await ingest_batch(runtime.factory, batch(), ctx)
    assert [r.outcome for r in first] == [Outcome.STORED] * 4 + [Outcome.DUPLICATE]
    async with runtime.factory() as session, session.begin():
        conversation = await session.get(Conversation, first[2].conversation_id)
        assert conversation is not None
        await set_status(session, conversation, "resolved", actor="test")
    again = [sms("SM3", "+393471112233", at=T0 + timedelta(days=1)), email("<a3@example.com>", "new@example.com")]
    assert [r.outcome for r in await ingest_batch(runtime.factory, again, ctx)] == [Outcome.STORED] * 2
    for model in MODELS:
        before = await stored_rows(runtime, model)
        await copy_through_sqlalchemy(runtime, model)
        after = await stored_rows(runtime, model)
        originals, copies = after[:len(before)], after[len(before):]
        assert originals == before and len(copies) == len(before) > 0
        unique = UNIQUE.get(table(model).name)
        columns = list(table(model).c.keys())
        for original, copy in zip(originals, copies, strict=True):
            for name, ours, theirs in zip(columns, original, copy, strict=True):
                if name == "id" or name == unique:
                    continue
                assert ours == theirs, (table(model).name, name, ours, theirs)


async def test_stored_times_are_utc_text_on_sqlite_and_aware_on_postgresql(runtime: Runtime) -> None:
    at = datetime(2026, 11, 1, 10, 30, 0, 5, tzinfo=UTC)
    await ingest_batch(runtime.factory, [sms("SMt", at=at)], replace(runtime.ingest_context, handlers=()))
    (row,) = await stored_rows(runtime, Message)
    created = row[list(table(Message).c.keys()).index("created_at")]
    expected: Any = "2026-11-01 10:30:00.000005" if runtime.settings.is_sqlite else at
    assert created == expected


async def test_a_driver_insert_must_name_every_column_with_a_default(runtime: Runtime) -> None:
    statement = DriverStatement.insert(table(TimelineEntry), ("customer_id", "kind", "occurred_at"))
    async with runtime.factory() as session, session.begin():
        with pytest.raises(ValueError, match="summary"):
            await statement.run(session, [(1, "note", "2026-01-01 00:00:00.000000")])


async def test_ids_for_several_tables_come_in_one_call(runtime: Runtime) -> None:
    await ingest_batch(runtime.factory, [sms("SMi")], replace(runtime.ingest_context, handlers=()))
    async with runtime.factory() as session, session.begin():
        fresh = await allocate_many(session, {"message": 3, "rawinput": 2, "customer": 0})
    assert fresh == {"message": [2, 3, 4], "rawinput": [1, 2], "customer": []}
