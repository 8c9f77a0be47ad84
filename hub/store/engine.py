"""Async engine and sessions for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_

from hub.settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def _install_sqlite_hooks(engine: AsyncEngine, extra: Sequence[Callable[[Any], None]]) -> None:
    """WAL, foreign keys, a busy timeout, upper layers' SQL functions, and BEGIN IMMEDIATE for every transaction.

    pysqlite's deferred BEGIN lets two writers both read and then fail with SQLITE_BUSY when
    upgrading to a write lock, which busy_timeout cannot wait out; IMMEDIATE takes the write
    lock up front, so concurrent writers queue instead of failing.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        for install in extra:
            install(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to aiosqlite (settings only admit sqlite+aiosqlite): one thread hop, where
        # SQLAlchemy's adapted cursor takes three (open, execute, close) for every transaction.
        await_(conn.connection.driver_connection.execute_fetchall("BEGIN IMMEDIATE"))


def make_engine(settings: Settings, sqlite_functions: Sequence[Callable[[Any], None]] = ()) -> AsyncEngine:
    """Create the async engine; `sqlite_functions` register SQL functions upper layers need on SQLite."""
    url = settings.database_url
    if settings.is_sqlite:
        _ensure_sqlite_dir(url)
        engine = create_async_engine(url, echo=settings.sql_echo, connect_args={"timeout": 30})
        _install_sqlite_hooks(engine, sqlite_functions)
        return engine
    return create_async_engine(url, echo=settings.sql_echo, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions keep loaded objects usable after commit (expire_on_commit=False)."""
    return async_sessionmaker(engine, expire_on_commit=False)
