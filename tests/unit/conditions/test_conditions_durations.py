"""Durations: "30d", "2h", "15m", combined units and plain seconds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.routing.conditions import format_duration, parse_duration


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", timedelta(days=30)), ("2h", timedelta(hours=2)), ("15m", timedelta(minutes=15)),
    ("45s", timedelta(seconds=45)), ("1w", timedelta(weeks=1)), ("1h30m", timedelta(minutes=90)),
    (" 2H ", timedelta(hours=2)), ("3600", timedelta(hours=1)), (90, timedelta(seconds=90)),
    (1.5, timedelta(seconds=1.5)), (0, timedelta(0)),
])
def test_parses(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "2 h", "h", "2y", "-5m", "1.5h", -1, True, None, [], 10**12])
def test_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(0), "0s"), (timedelta(hours=2), "2h"), (timedelta(days=8, minutes=5), "1w1d5m"),
])
def test_formats(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(text) == delta
