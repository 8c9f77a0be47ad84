"""compile_predicate and compile_sql select exactly the same rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, create_engine, delete, event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.routing.conditions import compile_sql, install_sqlite_functions, validate

from .model import COLUMNS, NOW_AT, conditions, expected_ids, metadata, numbered, rows, rows_table

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _select_ids(conn: Any, data: Any) -> Any:
    where = compile_sql(validate(data), COLUMNS, now=NOW_AT)
    return select(rows_table.c.id).where(where)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("conditions") / "rows.db"
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", install_sqlite_functions)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


# Unicode text included: SQLite runs the same Python folding, so it must agree exactly.
@PROPERTY
@given(data=conditions(ascii_only=False), table_rows=rows(ascii_only=False))
def test_sqlite_selects_what_the_predicate_accepts(sqlite_engine: Engine, data: Any, table_rows: Any) -> None:
    table_rows = numbered(table_rows)
    with sqlite_engine.begin() as conn:
        conn.execute(delete(rows_table))
        if table_rows:
            conn.execute(insert(rows_table), table_rows)
        selected = set(conn.scalars(_select_ids(conn, data)))
    assert selected == expected_ids(data, table_rows)


async def test_hook_works_on_aiosqlite(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'rows.db'}")
    event.listen(engine.sync_engine, "connect", install_sqlite_functions)
    data = {"all": [{"field": "message.body", "op": "contains_any", "value": ["reclamo"]},
                    {"field": "message.body", "op": "matches", "value": "^Un"}]}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            table_rows = [{"id": 1, "body": "Un RECLAMÒ!"}, {"id": 2, "body": "Un"}]
            await conn.execute(insert(rows_table), table_rows)
            assert set(await conn.scalars(_select_ids(conn, data))) == {1}
    finally:
        await engine.dispose()


# --- PostgreSQL ---------------------------------------------------------------------------

PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"


class _Postgres:
    """A throwaway database and an event loop to drive it from synchronous hypothesis tests."""

    def __init__(self, runner: asyncio.Runner, engine: AsyncEngine) -> None:
        self.runner = runner
        self.engine = engine

    def selected(self, data: Any, table_rows: list[dict[str, Any]]) -> set[int]:
        return self.runner.run(self._selected(data, table_rows))

    async def _selected(self, data: Any, table_rows: list[dict[str, Any]]) -> set[int]:
        async with self.engine.begin() as conn:
            await conn.execute(delete(rows_table))
            if table_rows:
                await conn.execute(insert(rows_table), table_rows)
            return set(await conn.scalars(_select_ids(conn, data)))


async def _admin(statement: str) -> None:
    admin = create_async_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


async def _open(name: str) -> AsyncEngine:
    await _admin(f'CREATE DATABASE "{name}"')
    engine = create_async_engine(f"{PG_SERVER}/{name}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


@pytest.fixture(scope="module")
def postgres() -> Iterator[_Postgres]:
    name = f"hub_conditions_{uuid.uuid4().hex[:12]}"
    with asyncio.Runner() as runner:
        engine = runner.run(_open(name))
        try:
            yield _Postgres(runner, engine)
        finally:
            runner.run(engine.dispose())
            runner.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ASCII text only: PostgreSQL folds with lower(), without accent folding (see sql.py).
@pytest.mark.postgres
@PROPERTY
@given(data=conditions(ascii_only=True), table_rows=rows(ascii_only=True))
def test_postgres_selects_what_the_predicate_accepts(postgres: _Postgres, data: Any, table_rows: Any) -> None:
    table_rows = numbered(table_rows)
    assert postgres.selected(data, table_rows) == expected_ids(data, table_rows)
