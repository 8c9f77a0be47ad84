"""Real local services for tests: free ports, a PostgreSQL database per test, Redis db numbers."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

PG_BASE = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_BASE = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:6379")
# Each pytest-xdist worker (gw0, gw1, ...) flushes a Redis database of its own.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_DB = int(os.environ.get("HUB_TEST_REDIS_DB", "10")) + _WORKER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, tries: int = 300) -> None:
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Create a fresh PostgreSQL database and drop it afterwards; yields its URL."""
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
