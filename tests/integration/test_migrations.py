"""Alembic owns the schema: the migrations produce exactly what the models describe."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.settings import Settings
from hub.store import migrate
from hub.store.engine import make_engine


async def test_models_and_migrations_agree(settings: Settings) -> None:
    engine = make_engine(settings)
    await migrate.upgrade(engine)
    await migrate.upgrade(engine)  # a second run is a no-op, as at every start
    diff = await migrate.pending_diff(engine)
    await engine.dispose()
    assert diff == [], f"models changed without a migration: run `hub db revision`: {diff}"


async def schema_state(engine: AsyncEngine) -> tuple[list[str], list[object]]:
    """The alembic_version rows and the differences between the models and the schema."""
    async with engine.connect() as conn:
        versions = list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    return versions, await migrate.pending_diff(engine)


HEAD = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


async def test_concurrent_upgrades_of_a_fresh_database_all_succeed(settings: Settings) -> None:
    # Four processes starting at once, each with its own engine (pool, connection).
    engines = [make_engine(settings) for _ in range(4)]
    try:
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        versions, diff = await schema_state(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()
    assert versions == [HEAD] and diff == []


@pytest.mark.slow
async def test_three_hub_init_processes_started_at_once_all_succeed(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATABASE_URL=settings.database_url, HUB_DATA_DIR=str(tmp_path / "data"))
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "init", "--admin-email", f"admin{n}@hotel.test",
        "--admin-password", "Init-Race-Pass-7", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) for n in range(3)]
    outputs = [await proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err.decode()[-2000:] for _, err in outputs]
    engine = make_engine(settings)
    try:
        versions, diff = await schema_state(engine)
        async with engine.connect() as conn:
            admins = sorted((await conn.execute(text("SELECT email FROM agent WHERE role = 'admin'"))).scalars())
    finally:
        await engine.dispose()
    assert versions == [HEAD] and diff == []
    assert admins == [f"admin{n}@hotel.test" for n in range(3)]


async def test_downgrade_to_base_drops_every_table_and_the_stay_totals_triggers(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync_conn: command.downgrade(migrate.alembic_config(sync_conn), "base"))
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                left = list((await conn.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' UNION ALL "
                    "SELECT proname FROM pg_proc WHERE proname LIKE 'staytotals%'"))).scalars())
            else:
                left = list((await conn.execute(text(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') "
                    "AND name NOT LIKE 'sqlite_%'"))).scalars())
        await migrate.upgrade(engine)  # and back up again, triggers and all
        versions, diff = await schema_state(engine)
    finally:
        await engine.dispose()
    assert left == ["alembic_version"]
    assert versions == [HEAD] and diff == []
