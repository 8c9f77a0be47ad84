"""`hub ingest calls`: every CDR layout, malformed rows reported by line, re-import is idempotent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlmodel import col, select

from hub.cli import main
from hub.settings import load_settings
from hub.store.engine import make_engine, make_session_factory
from hub.store.models import CallLog, TimelineEntry

DATA = Path(__file__).parents[2] / "data" / "cdr"
GENERIC_MAP = ("call_id=id,from=caller,to=callee,started=start,answered=answer,ended=end,secs=duration,"
               "status=disposition")
CASES = {
    # format: (file, extra args, imported, bad lines)
    "asterisk": ("asterisk_master.csv", [], 4, [3, 4]),
    "asterisk-custom": ("asterisk_custom.csv", [], 3, [4]),
    "freeswitch": ("freeswitch.csv", [], 3, [4, 5]),
    "csv": ("generic.csv", ["--map", GENERIC_MAP], 3, [4]),
}


def hub(database_url: str, tmp_path: Path, *args: str) -> Result:
    env: dict[str, str | None] = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path / "data"),
                                  "HUB_REDIS_URL": None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def stored(database_url: str, tmp_path: Path) -> list[Any]:
    async def load() -> list[Any]:
        engine = make_engine(load_settings(database_url=database_url, data_dir=tmp_path / "data"))
        try:
            async with make_session_factory(engine)() as session:
                calls = (await session.execute(select(CallLog).order_by(col(CallLog.id)))).scalars().all()
                entries = (await session.execute(select(TimelineEntry))).scalars().all()
                return [list(calls), list(entries)]
        finally:
            await engine.dispose()

    return asyncio.run(load())


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_each_layout_imports_good_rows_reports_bad_ones_and_reimports_as_duplicates(
    database_url: str, tmp_path: Path, fmt: str
) -> None:
    name, extra, imported, bad = CASES[fmt]
    path = DATA / name
    first = hub(database_url, tmp_path, "ingest", "calls", str(path), "--format", fmt, "--json",
                "--hub-number", "0612345678", *extra)
    assert first.exit_code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["imported"], summary["duplicates"], summary["updated"]) == (imported, 0, 0)
    assert [e["line"] for e in summary["errors"]] == bad
    for line in bad:
        assert f"{path}:{line}: " in first.stderr
    calls, entries = stored(database_url, tmp_path)
    assert len(calls) == imported and len(entries) == imported
    again = hub(database_url, tmp_path, "ingest", "calls", str(path), "--format", fmt, "--json", *extra)
    assert again.exit_code == 0
    assert json.loads(again.stdout) | {"errors": []} == {"imported": 0, "duplicates": imported, "updated": 0,
                                                       "errors": []}
    assert len(stored(database_url, tmp_path)[0]) == imported


def test_asterisk_rows_become_calls_with_direction_disposition_and_utc_times(database_url: str,
                                                                          tmp_path: Path) -> None:
    result = hub(database_url, tmp_path, "ingest", "calls", str(DATA / "asterisk_master.csv"),
                 "--format", "asterisk", "--hub-number", "0612345678", "--tz", "Europe/Rome")
    assert result.exit_code == 0 and "imported 4, duplicates 0, updated 0, errors 2" in result.stdout
    calls = {c.external_id: c for c in stored(database_url, tmp_path)[0]}
    answered, missed, busy = calls["1714550400.1"], calls["1714554000.3"], calls["1714561200.8"]
    assert (answered.direction, answered.from_number, answered.disposition, answered.duration_s) == (
        "in", "+393471234567", "answered", 125)
    assert answered.started_at.isoformat() == "2024-05-01T08:00:00+00:00"  # 10:00 in Rome, summer time
    assert (missed.disposition, missed.answered_at) == ("no-answer", None)
    assert (busy.direction, busy.to_number, busy.disposition) == ("out", "+393331112222", "busy")
    assert all(c.source == "asterisk" for c in calls.values())


def test_unreadable_files_and_bad_options_fail_clearly(database_url: str, tmp_path: Path) -> None:
    missing = hub(database_url, tmp_path, "ingest", "calls", str(tmp_path / "nope.csv"),
                  "--format", "asterisk")
    assert missing.exit_code == 1 and "nope.csv: cannot read" in missing.stderr
    generic = str(DATA / "generic.csv")
    bad_map = hub(database_url, tmp_path, "ingest", "calls", generic, "--format", "csv",
                  "--map", "from=colour")
    assert bad_map.exit_code == 2 and "--map" in bad_map.stderr
    bad_tz = hub(database_url, tmp_path, "ingest", "calls", generic, "--format", "freeswitch",
                 "--tz", "Mars/Olympus")
    assert bad_tz.exit_code == 2 and "--tz" in bad_tz.stderr
