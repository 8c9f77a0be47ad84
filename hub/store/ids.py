"""Primary keys handed out before a batched INSERT, so executemany needs no per-row RETURNING.

SQLAlchemy can only keep RETURNING in parameter order on SQLite by inserting row by row; taking
the ids first keeps a batch to one statement on both databases.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def allocate(session: AsyncSession, table: str, count: int) -> list[int]:
    """`count` fresh ids for `table`, valid inside the current transaction."""
    if count <= 0:
        return []
    if not table.isidentifier():
        raise ValueError(f"not a table name: {table!r}")
    if session.get_bind().dialect.name == "sqlite":
        # Safe because every SQLite transaction here starts with BEGIN IMMEDIATE: no other
        # writer can take the same ids before this transaction commits.
        start = (await session.execute(text(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"'))).scalar_one()
        return list(range(int(start) + 1, int(start) + 1 + count))
    rows = await session.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
        {"table": table, "count": count},
    )
    return [int(row[0]) for row in rows]
