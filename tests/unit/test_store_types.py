"""Column types: the SQLite fast path for UTC datetimes writes what SQLAlchemy's DATETIME writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import DATETIME, aiosqlite

from hub.store.bulk import binder
from hub.store.types import UTCDateTime

SQLITE = aiosqlite.dialect()
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))])


def generic(value: datetime) -> str:
    """The TypeDecorator's own path: process_bind_param, then SQLite DATETIME's processor."""
    process = DATETIME().bind_processor(SQLITE)
    assert process is not None
    return str(process(UTCDateTime().process_bind_param(value, SQLITE)))


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES))
def test_sqlite_fast_path_matches_the_generic_processor(value: datetime) -> None:
    fast = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert fast is not None and fast(value) == generic(value)


def test_naive_datetimes_are_refused_on_both_databases() -> None:
    for dialect in (SQLITE, asyncpg.dialect()):
        with pytest.raises(ValueError, match="naive"):
            binder(dialect).time(datetime(2026, 1, 1))


def test_binder_serialises_json_like_the_column_type() -> None:
    bind = binder(SQLITE)
    assert bind.json([]) == "[]" and bind.json({}) == "{}"
    assert bind.json({"preview": "è ✓"}) == '{"preview": "\\u00e8 \\u2713"}'
    assert bind.time(None) is None
