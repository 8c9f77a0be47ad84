from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.channels.phone.cdr import (
    PARSERS,
    CdrError,
    CdrRow,
    Result,
    parse_asterisk_csv,
    parse_asterisk_custom,
    parse_freeswitch_csv,
    parse_generic_csv,
    parse_mapping,
)
from hub.core.envelopes import Direction

DATA = Path(__file__).resolve().parents[2] / "data" / "cdr"
HUB = ["+390612345678"]
GENERIC_MAP = (
    "call_id=id,from=caller,to=callee,started=start,"
    "answered=answer,ended=end,secs=duration,status=disposition"
)


def lines(name: str) -> Iterator[str]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        yield from handle


def split(results: Iterator[Result]) -> tuple[dict[int, CdrRow], dict[int, CdrError]]:
    rows: dict[int, CdrRow] = {}
    errors: dict[int, CdrError] = {}
    for item in results:
        if isinstance(item, CdrRow):
            rows[item.line_no] = item
        else:
            errors[item.line_no] = item
    return rows, errors


def at(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_asterisk_master_csv() -> None:
    rows, errors = split(parse_asterisk_csv(lines("asterisk_master.csv"), hub_numbers=HUB))
    assert sorted(rows) == [1, 2, 6, 7]
    assert sorted(errors) == [3, 4]
    assert "expected 16 or 17 or 18 or 21 columns, got 6" in errors[3].message
    assert "bad timestamp '01/05/2024 12:00'" in errors[4].message
    assert errors[4].raw.startswith('"","3471234567"')

    answered = rows[1].call
    assert answered.external_id == "1714550400.1"
    assert answered.source == "asterisk"
    assert answered.direction is Direction.IN
    assert (answered.caller.value, answered.caller.name) == ("+393471234567", "Mario Rossi")
    assert answered.callee.value == "+390612345678"
    # 10:00 in Rome during summer time is 08:00 UTC
    assert answered.started_at == at(2024, 5, 1, 8, 0, 0)
    assert answered.answered_at == at(2024, 5, 1, 8, 0, 5)
    assert answered.ended_at == at(2024, 5, 1, 8, 2, 5)
    assert answered.duration_s == 125
    assert answered.disposition == "answered"

    unanswered = rows[2].call
    assert unanswered.answered_at is None
    assert unanswered.disposition == "no-answer"
    assert unanswered.missed

    outgoing = rows[6].call
    assert outgoing.caller.value == "ext:201"
    assert outgoing.caller.name == "Reception"
    assert outgoing.callee.value == "+393331112222"
    assert outgoing.direction is Direction.OUT
    assert outgoing.disposition == "busy"

    anonymous = rows[7].call  # 16 columns: no uniqueid logged
    assert anonymous.caller.value == "anonymous"
    assert anonymous.external_id.startswith("sha256:")


def test_asterisk_custom() -> None:
    rows, errors = split(parse_asterisk_custom(lines("asterisk_custom.csv"), hub_numbers=HUB))
    assert sorted(rows) == [1, 2, 3]
    assert list(errors) == [4]
    assert "bad duration 'three hundred'" in errors[4].message
    # one call, two CDRs (two phones rang): the sequence keeps both
    assert [rows[1].call.external_id, rows[2].call.external_id] == ["1714550400.1-1", "1714550400.1-2"]
    assert rows[1].call.caller.name == "Mario Rossi"
    assert rows[1].call.disposition == "answered"
    assert rows[2].call.disposition == "no-answer"
    assert rows[3].call.direction is Direction.OUT
    assert rows[3].call.duration_s == 308


def test_asterisk_custom_too_few_columns() -> None:
    _, errors = split(parse_asterisk_custom(['"a","b","c"\n']))
    assert errors[1].message == "expected at least 18 columns, got 3"


def test_freeswitch() -> None:
    rows, errors = split(parse_freeswitch_csv(lines("freeswitch.csv"), hub_numbers=HUB))
    assert sorted(rows) == [1, 2, 3]
    assert sorted(errors) == [4, 5]
    assert "expected 15 columns, got 10" in errors[4].message
    assert "bad timestamp '2024-13-45 25:00:00'" in errors[5].message

    first = rows[1].call
    assert first.external_id == "5f0b1f6a-2d7e-4b8e-9c1a-0d3e5b7a9c11"
    assert first.source == "freeswitch"
    assert first.caller.name == "Mario Rossi"
    assert first.started_at == at(2024, 1, 15, 8, 30, 0)  # winter: Rome is UTC+1
    assert first.direction is Direction.IN
    assert first.disposition == "answered"
    assert rows[2].call.disposition == "canceled"
    assert rows[3].call.disposition == "busy"
    assert rows[3].call.caller.value == "ext:1001"
    assert rows[3].call.direction is Direction.OUT


def test_generic_csv() -> None:
    rows, errors = split(parse_generic_csv(lines("generic.csv"), parse_mapping(GENERIC_MAP), hub_numbers=HUB))
    assert sorted(rows) == [2, 3, 5]
    assert list(errors) == [4]
    assert "expected 9 columns, got 8" in errors[4].message

    first = rows[2].call
    assert first.source == "cdr"
    assert first.external_id.startswith("sha256:")
    assert first.started_at == at(2024, 7, 1, 7, 0, 0)  # explicit +02:00 offset
    assert first.duration_s == 190
    assert first.disposition == "answered"
    assert first.direction is Direction.IN

    second = rows[3].call
    assert second.duration_s == 25  # no duration column value: end - start
    assert second.disposition == "no-answer"

    epoch = rows[5].call
    assert epoch.external_id == "x-4"
    assert epoch.started_at == at(2024, 7, 1, 9, 0, 0)
    assert epoch.direction is Direction.OUT


def test_generic_csv_header_problems_are_reported_on_line_1() -> None:
    results = list(parse_generic_csv(iter(["a,b\n", "1,2\n"]), {"a": "caller", "b": "callee", "c": "start"}))
    assert results == [CdrError(1, "header: columns not in the header: c", "a,b")]
    results = list(parse_generic_csv(iter(["a,b\n"]), {"a": "caller"}))
    assert isinstance(results[0], CdrError)
    assert "no column for callee, start" in results[0].message


def test_parse_mapping() -> None:
    assert parse_mapping(" from=caller, to=callee ,") == {"from": "caller", "to": "callee"}
    with pytest.raises(ValueError, match="bad mapping 'from=nobody'"):
        parse_mapping("from=nobody")
    with pytest.raises(ValueError, match="bad mapping 'from'"):
        parse_mapping("from")


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("asterisk_master.csv", "asterisk"),
        ("asterisk_custom.csv", "asterisk-custom"),
        ("freeswitch.csv", "freeswitch"),
    ],
)
def test_reparsing_gives_the_same_external_ids(name: str, layout: str) -> None:
    def ids() -> list[str]:
        return [r.call.external_id for r in PARSERS[layout](lines(name)) if isinstance(r, CdrRow)]

    assert ids() == ids()
    assert len(set(ids())) == len(ids())


def test_generic_reparse_and_hash_ignores_surrounding_whitespace() -> None:
    mapping = parse_mapping(GENERIC_MAP)
    first = [r for r in parse_generic_csv(lines("generic.csv"), mapping) if isinstance(r, CdrRow)]
    again = [r for r in parse_generic_csv(lines("generic.csv"), mapping) if isinstance(r, CdrRow)]
    assert [r.call.external_id for r in first] == [r.call.external_id for r in again]
    spaced = parse_generic_csv(
        iter(["from,to,started\n", " +393471234567 ,+390612345678,2024-07-01 10:00:00\n"]),
        {"from": "caller", "to": "callee", "started": "start"},
    )
    plain = parse_generic_csv(
        iter(["from,to,started\n", "+393471234567,+390612345678,2024-07-01 10:00:00\n"]),
        {"from": "caller", "to": "callee", "started": "start"},
    )
    [a], [b] = list(spaced), list(plain)
    assert isinstance(a, CdrRow) and isinstance(b, CdrRow)
    assert a.call.external_id == b.call.external_id


def test_multiline_record_reports_its_first_line() -> None:
    text = [
        "\n",
        '"","201","3331112222","x","""Multi\n',
        'line"" <201>","c","d","Dial","","2024-05-01 10:00:00","","2024-05-01 10:00:10",10,0,"BUSY","D"\n',
        "garbage\n",
    ]
    rows, errors = split(parse_asterisk_csv(text))
    assert list(rows) == [2]
    assert list(errors) == [4]


def test_raw_row_is_kept() -> None:
    rows, _ = split(parse_freeswitch_csv(lines("freeswitch.csv")))
    assert rows[1].call.raw is not None
    assert rows[1].call.raw.decode().startswith('"Mario Rossi","+393471234567"')
