"""Alembic owns the schema: the migrations produce exactly what the models describe."""

from __future__ import annotations

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
