"""Durations written as "30d", "2h", "1h30m" or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")
# A century is far beyond any sensible rule and keeps datetime arithmetic from overflowing.
MAX_SECONDS = 100 * 365 * 86400


def parse_duration(value: object) -> timedelta:
    """A non-negative duration from "90s", "15m", "2h", "30d", "1w", "1h30m" or seconds."""
    seconds = _seconds(value)
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"duration must be between 0 and {MAX_SECONDS} seconds")
    return timedelta(seconds=seconds)


def _seconds(value: object) -> float:
    # bool is an int subclass; `true` seconds is a typo, not a duration.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return float(text)
        if _WHOLE.fullmatch(text):
            return float(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))
    raise ValueError(f'expected a duration like "30d", "2h", "15m" or seconds, got {value!r}')


def format_duration(delta: timedelta) -> str:
    """The shortest "1d2h"-style spelling of a duration, for explanations."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
