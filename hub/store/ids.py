"""Primary keys handed out before a batched INSERT, so executemany needs no per-row RETURNING.

SQLAlchemy can only keep RETURNING in parameter order on SQLite by inserting row by row; taking
the ids first keeps a batch to one statement on both databases.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.bulk import driver_rows


async def allocate(session: AsyncSession, table: str, count: int) -> list[int]:
    """`count` fresh ids for `table`, valid inside the current transaction."""
    return (await allocate_many(session, {table: count}))[table]


async def allocate_many(session: AsyncSession, counts: Mapping[str, int]) -> dict[str, list[int]]:
    """Fresh ids for several tables in one round trip: `counts[table]` ids each."""
    wanted = {table: count for table, count in counts.items() if count > 0}
    found: dict[str, list[int]] = {table: [] for table in counts}
    for table in wanted:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
    if not wanted:
        return found
    if session.get_bind().dialect.name == "sqlite":
        # Safe because every SQLite transaction here starts with BEGIN IMMEDIATE: no other
        # writer can take the same ids before this transaction commits.
        columns = ", ".join(f'(SELECT COALESCE(MAX(id), 0) FROM "{table}")' for table in wanted)
        (starts,) = await driver_rows(session, f"SELECT {columns}")
        for (table, count), start in zip(wanted.items(), starts, strict=True):
            found[table] = list(range(int(start) + 1, int(start) + 1 + count))
        return found
    parts = [f"SELECT {n}, nextval(pg_get_serial_sequence(:t{n}, 'id')) FROM generate_series(1, :n{n})"
             for n in range(len(wanted))]
    params: dict[str, object] = {}
    for n, (table, count) in enumerate(wanted.items()):
        params[f"t{n}"], params[f"n{n}"] = table, count
    names = list(wanted)
    for n, value in (await session.execute(text(" UNION ALL ".join(parts)), params)).all():
        found[names[n]].append(int(value))
    return found
