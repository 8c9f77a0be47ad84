"""DriverQuery: statements with result rows run by the driver give what SQLAlchemy gives, on both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from hub.core.ingest import ingest_batch
from hub.runtime import Runtime
from hub.store.bulk import DriverQuery
from hub.store.models import Message, table
from tests.integration.test_ingest_storage import batch

_message = table(Message).c
# Every kind of column a message has: JSON lists and dicts, aware times, nullable text, ints.
_BY_IDS = select(table(Message)).where(_message.id.in_(bindparam("b_ids", expanding=True))).order_by(_message.id)


async def _stored_ids(runtime: Runtime) -> list[int]:
    await ingest_batch(runtime.factory, batch(), replace(runtime.ingest_context, handlers=()))
    async with runtime.factory() as session:
        return list((await session.scalars(select(_message.id).order_by(_message.id))).all())


async def test_a_driver_select_returns_the_rows_sqlalchemy_returns(runtime: Runtime) -> None:
    ids = await _stored_ids(runtime)
    query = DriverQuery(_BY_IDS, expanding="b_ids")
    async with runtime.factory() as session:
        for wanted in (ids, ids[:1], ids[1:3], [*ids, 10_000]):  # one plan per list length, unknown ids ignored
            ours = await query.rows(session, {"b_ids": wanted})
            theirs = [tuple(row) for row in await session.execute(_BY_IDS, {"b_ids": wanted})]
            assert ours == theirs and len(ours) == len(set(wanted) & set(ids))
    headers = [row[list(_message.keys()).index("headers")] for row in ours]
    created = [row[list(_message.keys()).index("created_at")] for row in ours]
    assert any(h for h in headers) and all(isinstance(h, dict) for h in headers)
    assert all(isinstance(t, datetime) and t.tzinfo is not None for t in created)


async def test_a_driver_update_returning_binds_and_converts_like_sqlalchemy(runtime: Runtime) -> None:
    ids = await _stored_ids(runtime)
    at = datetime(2026, 12, 2, 21, 0, 0, 7, tzinfo=UTC)
    query = DriverQuery(
        update(table(Message)).where(_message.id == bindparam("b_id"), _message.direction == "in")
        .values(created_at=bindparam("b_at"), delivery_detail="seen").returning(_message.id, _message.created_at,
                                                                            _message.headers)
    )
    async with runtime.factory() as session, session.begin():
        (row,) = await query.rows(session, {"b_id": ids[0], "b_at": at})
    assert row[0] == ids[0] and row[1] == at and isinstance(row[2], dict)
    async with runtime.factory() as session:
        stored = (await session.execute(select(_message.created_at, _message.delivery_detail)
                                        .where(_message.id == ids[0]))).one()
    assert tuple(stored) == (at, "seen")


async def test_a_driver_query_raises_sqlalchemys_errors_and_keeps_what_was_stored(runtime: Runtime) -> None:
    ids = await _stored_ids(runtime)
    clash = DriverQuery(update(table(Message)).where(_message.id == bindparam("b_id"))
                        .values(external_id=bindparam("b_ref")).returning(_message.id))
    async with runtime.factory() as session:
        taken = (await session.execute(select(_message.external_id).where(_message.id == ids[1]))).scalar_one()
    with pytest.raises(IntegrityError):
        async with runtime.factory() as session, session.begin():
            await clash.rows(session, {"b_id": ids[0], "b_ref": taken})
    async with runtime.factory() as session:
        assert (await session.execute(select(_message.external_id).where(_message.id == ids[1]))).scalar_one() == taken
