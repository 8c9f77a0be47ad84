"""Business hours: when the desk is staffed, and adding business time to a moment (for SLA)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")
# Looking further ahead than this means the hours are empty: stop instead of spinning.
_MAX_DAYS = 400


class HoursError(ValueError):
    """A business-hours text that cannot be read."""


def _minutes(text: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours > 24 or minutes > 59 or hours * 60 + minutes > 24 * 60:
        raise HoursError(f"bad time {text!r}")
    return hours * 60 + minutes


def _days(text: str) -> list[int]:
    first, _, last = text.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise HoursError(f"bad day range {text!r}; use e.g. mon-fri")
    a, b = DAYS.index(first), DAYS.index(last or first)
    return list(range(a, b + 1)) if a <= b else [*range(a, 7), *range(0, b + 1)]


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Open windows per weekday (minutes from local midnight) in one timezone."""

    tz: ZoneInfo
    windows: tuple[tuple[tuple[int, int], ...], ...]

    @classmethod
    def parse(cls, text: str, timezone: str = "Europe/Rome") -> BusinessHours:
        """Read e.g. "mon-fri 09:00-18:00; sat 09:00-13:00" ("always" means round the clock)."""
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise HoursError(f"unknown timezone {timezone!r}") from None
        if text.strip().lower() in ("always", "24/7"):
            text = "mon-sun 00:00-24:00"
        days: list[list[tuple[int, int]]] = [[] for _ in DAYS]
        for part in filter(None, (p.strip().lower() for p in text.split(";"))):
            match = _PART.match(part)
            if match is None:
                raise HoursError(f"cannot read {part!r}; use e.g. mon-fri 09:00-18:00")
            start, end = _minutes(match["start"]), _minutes(match["end"])
            if end <= start:
                raise HoursError(f"{part!r} ends before it starts")
            for day in _days(match["days"]):
                days[day].append((start, end))
        return cls(tz, tuple(tuple(sorted(d)) for d in days))

    def is_open(self, at: datetime) -> bool:
        """Whether the moment falls inside a window."""
        local = at.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.windows[local.weekday()])

    def add(self, start: datetime, minutes: float) -> datetime:
        """The moment `minutes` of business time after `start`."""
        left = timedelta(minutes=minutes)
        local = start.astimezone(self.tz)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(_MAX_DAYS):
            for begin, end in self.windows[day.weekday()]:
                open_at, close_at = self._at(day, begin), self._at(day, end)
                cursor = max(open_at, local)
                if cursor >= close_at:
                    continue
                if cursor + left <= close_at:
                    return (cursor + left).astimezone(UTC)
                left -= close_at - cursor
            day = (day + timedelta(days=1)).replace(hour=0, minute=0)
        raise HoursError("business hours have no open window")

    def _at(self, day: datetime, minute: int) -> datetime:
        # Wall-clock arithmetic within the day, then a fresh zone lookup so DST days are right.
        naive = day.replace(tzinfo=None) + timedelta(minutes=minute)
        return naive.replace(tzinfo=self.tz)
