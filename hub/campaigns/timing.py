"""When each recipient may receive a campaign: "09:00 local" and quiet hours (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class TimingError(ValueError):
    """A local send time or quiet-hours window that cannot be parsed."""


def parse_clock(text: str) -> time:
    """`HH:MM` as a time; TimingError otherwise."""
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise TimingError(f"{text!r} is not a HH:MM time") from None


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A local window when nothing is sent, e.g. 21:00-08:00 (may wrap past midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        start, sep, end = text.partition("-")
        if not sep:
            raise TimingError(f"{text!r} is not a HH:MM-HH:MM window")
        return cls(parse_clock(start.strip()), parse_clock(end.strip()))

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The customer's zone; an unknown name falls back to `default` rather than failing a send."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def _after_quiet(local: datetime, quiet: QuietHours) -> datetime:
    if not quiet.contains(local.timetz().replace(tzinfo=None)):
        return local
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    return end if end > local else end + timedelta(days=1)


def send_after(start: datetime, tz_name: str | None, *, local_time: str | None = None,
               quiet: QuietHours | None = None) -> datetime:
    """The first moment at or after `start` (UTC) allowed for a customer in `tz_name`, in UTC."""
    tz = zone(tz_name)
    local = start.astimezone(tz)
    if local_time is not None:
        clock = parse_clock(local_time)
        wanted = datetime.combine(local.date(), clock, tzinfo=tz)
        # Rebuild through UTC so a DST gap (02:30 that does not exist) lands on a real instant.
        wanted = wanted.astimezone(UTC).astimezone(tz)
        local = wanted if wanted >= local else datetime.combine(local.date() + timedelta(days=1), clock, tzinfo=tz)
    if quiet is not None:
        local = _after_quiet(local, quiet)
    return local.astimezone(UTC)
