"""Apply and check Alembic migrations on the hub's async engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import hub.store.models  # noqa: F401  (registers every table)

MIGRATIONS = Path(__file__).parent / "migrations"
# The advisory lock key every hub process agrees on (the bytes of "hubmigr", unlikely to collide).
MIGRATION_LOCK = int.from_bytes(b"hubmigr", "big")


def alembic_config(connection: Any = None) -> Config:
    """An Alembic config pointing at the packaged migrations, optionally bound to a connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent; run by `hub init` and at every start).

    Several `hub serve`/`hub worker` processes may start at once: on PostgreSQL the first takes
    a transaction-level advisory lock and migrates while the others wait for its commit, then
    find nothing to do. SQLite's transactions begin IMMEDIATE (hub.store.engine), which
    serialises them the same way.
    """
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(lambda sync_conn: command.upgrade(alembic_config(sync_conn), revision))


async def pending_diff(engine: AsyncEngine) -> list[Any]:
    """Differences between the models and the migrated schema; empty when they agree."""

    def _compare(sync_conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(_compare)


def autogenerate(connection: Any, message: str) -> None:
    """Write a new revision from the model changes (developer tool: `hub db revision`)."""
    command.revision(alembic_config(connection), message=message, autogenerate=True)
