"""Batched writes at the driver: SQLAlchemy compiles a statement once, the DBAPI's executemany runs it.

For a large executemany most of SQLAlchemy's cost is per row and per value: a parameter dict, a
bind processor call for every JSON and datetime value. Here values are converted by a `Binder`
with the column types' own bind processors, so a row is stored byte for byte as the ORM would
store it, but a value shared by many rows (a batch's "now", a message's time) is converted once.
On SQLite the statement goes to aiosqlite in one call (one thread hop); on PostgreSQL through
`exec_driver_sql` to asyncpg's executemany.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import aiosqlite
from sqlalchemy import ColumnElement, Select, Table, Update, and_, insert, or_
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from hub.store.types import JsonType, UTCDateTime

Row = tuple[Any, ...]


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """The function SQLAlchemy applies to a value of `type_` before handing it to the driver."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


class Binder:
    """Python values to driver values with the column types' bind processors, for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._time = _processor(UTCDateTime(), dialect)
        self._json = _processor(JsonType, dialect)
        # Most JSON columns of a new row are empty: serialise those once.
        self._empty_list = self._json([])
        self._empty_dict = self._json({})

    def time(self, value: datetime | None) -> Any:
        """A UTCDateTime column's value as stored (a string on SQLite, aware UTC on PostgreSQL)."""
        return self._time(value)

    def json(self, value: Any) -> Any:
        """A JSON column's value as stored (the serialised text on both databases)."""
        if isinstance(value, list) and not value:
            return self._empty_list
        if isinstance(value, dict) and not value:
            return self._empty_dict
        return self._json(value)


@lru_cache(maxsize=32)
def binder(dialect: Dialect) -> Binder:
    """The Binder of a dialect (one per engine; dialects compare by identity)."""
    return Binder(dialect)


def session_binder(session: AsyncSession) -> Binder:
    """The Binder for the database a session is bound to."""
    return binder(session.get_bind().dialect)


def pairs_in(
    first: ColumnElement[Any], second: ColumnElement[Any], pairs: Iterable[tuple[Any, Any]], chunk: int = 500
) -> list[ColumnElement[bool]]:
    """WHERE clauses matching (first, second) pairs, one clause per `chunk` pairs.

    Each clause ORs `first = ? AND second IN (...)` per value of `first`: both databases answer
    that from a (first, second) index (SQLite's multi-index OR), where a row-value IN would scan.
    """
    grouped: dict[Any, list[Any]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    clauses: list[ColumnElement[bool]] = []
    terms: list[ColumnElement[bool]] = []
    size = 0
    for key, values in grouped.items():
        for start in range(0, len(values), chunk):
            part = values[start:start + chunk]
            if terms and size + len(part) > chunk:
                clauses.append(or_(*terms))
                terms, size = [], 0
            terms.append(and_(first == key, second.in_(part)))
            size += len(part)
    if terms:
        clauses.append(or_(*terms))
    return clauses


class DriverStatement:
    """One statement compiled per dialect for the driver's executemany; rows are tuples in `names` order."""

    def __init__(self, statement: ClauseElement, names: Sequence[str]) -> None:
        self.statement = statement
        self.names = tuple(names)
        self._compiled: dict[tuple[type[Dialect], str], tuple[str, tuple[int, ...] | None]] = {}

    @classmethod
    def insert(cls, table: Table, columns: Sequence[str]) -> DriverStatement:
        """INSERT INTO table (columns) VALUES (...), without RETURNING: ids are allocated before."""
        return cls(insert(table).inline(), columns)

    def _compile(self, dialect: Dialect) -> tuple[str, tuple[int, ...] | None]:
        key = (type(dialect), dialect.paramstyle)
        found = self._compiled.get(key)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=list(self.names), for_executemany=True)
            assert isinstance(compiled, SQLCompiler)
            wanted = tuple(compiled.positiontup or ())
            if set(wanted) != set(self.names):
                # e.g. a column with a default left out: SQLAlchemy would add it, the rows lack it
                raise ValueError(f"statement parameters {wanted} are not {self.names}")
            order = tuple(self.names.index(name) for name in wanted)
            # Rows go to the driver as given when the statement takes each value once, in order.
            found = (str(compiled), None if order == tuple(range(len(self.names))) else order)
            self._compiled[key] = found
        return found

    async def run(self, session: AsyncSession, rows: Sequence[Row]) -> None:
        """Execute the statement once per row, in one executemany on the session's connection."""
        if not rows:
            return
        connection = await session.connection()
        sql, order = self._compile(connection.dialect)
        params = list(rows) if order is None else list(map(itemgetter(*order), rows))
        if connection.dialect.driver == "aiosqlite":
            await _aiosqlite_executemany(connection, sql, params)
        else:
            await connection.exec_driver_sql(sql, params)


# A positional parameter's value from the caller's params: by name, from an IN-list by place, or
# a literal's, converted when the statement was compiled.
_Source = Callable[[dict[str, Any]], Any]


class DriverQuery:
    """A statement with result rows (SELECT, UPDATE ... RETURNING) run by the driver in one call.

    SQLAlchemy's adapted aiosqlite cursor costs four thread hops per statement (open, execute,
    fetch, close) and its execution bookkeeping; aiosqlite's execute_fetchall is one. Parameters
    and values go through the columns' own bind and result processors, so the rows hold what
    SQLAlchemy would return. Other drivers have no thread to hop to: the connection runs it.
    `expanding` names the one IN-list parameter, compiled once per list length.
    """

    def __init__(self, statement: Select[Any] | Update, expanding: str | None = None) -> None:
        self.statement = statement
        self.expanding = expanding
        self._plans: dict[tuple[type[Dialect], int], _QueryPlan] = {}

    async def rows(self, session: AsyncSession, params: dict[str, Any]) -> list[Row]:
        """The result rows for `params` (Python values, by parameter name), in the session's transaction."""
        connection = await session.connection()
        if connection.dialect.driver != "aiosqlite":
            return [tuple(row) for row in await connection.execute(self.statement, params)]
        plan = self._plan(connection.dialect, len(params[self.expanding]) if self.expanding else 0)
        return plan.converted(await _aiosqlite_rows(connection, plan.sql, plan.values(params)))

    def _plan(self, dialect: Dialect, size: int) -> _QueryPlan:
        key = (type(dialect), size)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 256:  # list lengths seen: a batch's are few, but bound them
                self._plans.clear()
            plan = self._plans[key] = _QueryPlan(self.statement, dialect, self.expanding, size)
        return plan


class _QueryPlan:
    """A DriverQuery compiled for one dialect (and one IN-list length): its SQL and converters."""

    def __init__(self, statement: Select[Any] | Update, dialect: Dialect, expanding: str | None, size: int) -> None:
        if expanding is not None:
            statement = statement.params({expanding: [None] * size})
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        expanded = {f"{expanding}_{n + 1}": (expanding, n) for n in range(size)} if expanding else {}
        self._sources = [self._source(compiled, dialect, name, expanded.get(name))
                         for name in compiled.positiontup or ()]
        self._results = [(index, process) for index, column in enumerate(statement.exported_columns)
                         if (process := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None]

    @staticmethod
    def _source(compiled: SQLCompiler, dialect: Dialect, name: str, item: tuple[str, int] | None) -> _Source:
        """Where the parameter `name` takes its value; `item` is (list name, place) for an IN-list's."""
        if item is not None:
            process = _processor(compiled.binds[item[0]].type, dialect)
            return lambda params: process(params[item[0]][item[1]])
        bind = compiled.binds[name]
        process = _processor(bind.type, dialect)
        if bind.required:  # a bindparam() the caller fills
            return lambda params: process(params[name])
        fixed = process(bind.effective_value)
        return lambda params: fixed

    def values(self, params: dict[str, Any]) -> Row:
        """The driver's positional parameters."""
        return tuple(source(params) for source in self._sources)

    def converted(self, fetched: Iterable[Any]) -> list[Row]:
        """Driver rows with each column's result processor applied."""
        if not self._results:
            return [tuple(row) for row in fetched]
        rows = []
        for raw in fetched:
            row = list(raw)
            for index, process in self._results:
                row[index] = process(row[index])
            rows.append(tuple(row))
        return rows


async def driver_rows(session: AsyncSession, sql: str, params: Row = ()) -> list[Row]:
    """Rows of a query written in the dialect's own paramstyle, as the driver returns them."""
    connection = await session.connection()
    if connection.dialect.driver != "aiosqlite":
        return [tuple(row) for row in await connection.exec_driver_sql(sql, params)]
    return [tuple(row) for row in await _aiosqlite_rows(connection, sql, params)]


async def _aiosqlite_rows(connection: AsyncConnection, sql: str, params: Row) -> Iterable[Any]:
    driver = await _aiosqlite(connection)
    with _as_sqlalchemy_errors(sql, params):
        return await driver.execute_fetchall(sql, params)


async def _aiosqlite_executemany(connection: AsyncConnection, sql: str, params: list[Row]) -> None:
    driver = await _aiosqlite(connection)
    with _as_sqlalchemy_errors(sql, params):
        await driver.executemany(sql, params)


async def _aiosqlite(connection: AsyncConnection) -> aiosqlite.Connection:
    """The aiosqlite connection under a session's connection, in the session's transaction.

    aiosqlite runs every call on its own thread: one call is one hop, where SQLAlchemy's adapted
    cursor takes three or four (open, execute, fetch, close) plus its execution bookkeeping.
    """
    driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, aiosqlite.Connection)
    return driver


@contextmanager
def _as_sqlalchemy_errors(sql: str, params: Any) -> Iterator[None]:
    """Raise sqlite3's errors as SQLAlchemy's, so callers catch IntegrityError alike on every database."""
    try:
        yield
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, params, error, sqlite3.Error) from error
