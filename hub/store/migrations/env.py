"""Alembic environment: runs on a connection handed in by hub.store.migrate (async engines)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import hub.store.models  # noqa: F401  (registers every table on the metadata)

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `hub init` (hub.store.migrate), not bare alembic")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
