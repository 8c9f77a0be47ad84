"""PBX call detail records (Asterisk, FreeSWITCH, any CSV) parsed row by row into CallLog.

Each parser is a generator over text lines yielding CdrRow for a good row and CdrError (with its
line number) for a bad one, so one broken row never stops an import.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hub.core.envelopes import Address, AddressKind, CallLog, Direction
from hub.core.identity import InvalidAddress, normalise_phone

ASTERISK_TIME = "%Y-%m-%d %H:%M:%S"  # cdr_csv's DATE_FORMAT "%Y-%m-%d %T"; FreeSWITCH's *_stamp too
GENERIC_FIELDS = frozenset(
    {
        "caller",
        "callee",
        "caller_name",
        "start",
        "answer",
        "end",
        "duration",
        "disposition",
        "id",
        "recording_url",
    }
)
GENERIC_REQUIRED = ("caller", "callee", "start")
_ANONYMOUS = frozenset({"", "anonymous", "restricted", "unknown", "private", "unavailable"})
_CLID = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<number>[^>]*)>\s*$')

# Disposition words of Asterisk, FreeSWITCH hangup causes and common exports. Only failures need
# an entry: an answered call is "answered" whatever the PBX says, an unanswered one "no-answer".
_FAILURE_HINTS = {
    "BUSY": "busy",
    "USER_BUSY": "busy",
    "CALL_REJECTED": "busy",
    "FAILED": "failed",
    "CONGESTION": "failed",
    "UNALLOCATED_NUMBER": "failed",
    "NO_ROUTE_DESTINATION": "failed",
    "NORMAL_TEMPORARY_FAILURE": "failed",
    "NETWORK_OUT_OF_ORDER": "failed",
    "DESTINATION_OUT_OF_ORDER": "failed",
    "INVALID_NUMBER_FORMAT": "failed",
    "RECOVERY_ON_TIMER_EXPIRE": "failed",
    "CANCELED": "canceled",
    "CANCELLED": "canceled",
    "ORIGINATOR_CANCEL": "canceled",
}


@dataclass(frozen=True, slots=True)
class CdrRow:
    """A good CDR row; `line_no` is the first physical line of the record (1-based)."""

    line_no: int
    call: CallLog


@dataclass(frozen=True, slots=True)
class CdrError:
    """A CDR row that could not be imported, with why; `raw` keeps it for quarantine."""

    line_no: int
    message: str
    raw: str = ""


class CdrRowError(ValueError):
    """Why one row is unusable; turned into a CdrError by the row loop."""


@dataclass(frozen=True, slots=True)
class _Record:
    """The fields every layout provides, still as text."""

    src: str
    dst: str
    clid: str
    start: str
    answer: str
    end: str
    duration: str
    disposition: str
    uid: str
    recording_url: str = ""


@dataclass(frozen=True, slots=True)
class _Context:
    source: str
    region: str
    zone: ZoneInfo
    hub_numbers: frozenset[str]


Result = CdrRow | CdrError
Layout = Callable[[list[str]], _Record]


def party(value: str, region: str, name: str | None = None) -> Address:
    """Normalise a CDR party; internal extensions and dialplan names become "ext:<value>"."""
    raw = value.strip()
    if raw.lower() in _ANONYMOUS:
        return Address(AddressKind.PHONE, "anonymous", name)
    try:
        return Address(AddressKind.PHONE, normalise_phone(raw, region), name)
    except InvalidAddress:
        return Address(AddressKind.PHONE, f"ext:{raw}", name)


def _caller_name(clid: str, number: str) -> str | None:
    match = _CLID.match(clid)
    name = (match.group("name") if match else clid).strip()
    return name if name and name != number.strip() else None


def local_time(value: str, zone: ZoneInfo) -> datetime | None:
    """Parse a PBX timestamp (naive = local time in `zone`, epoch seconds, ISO 8601) to aware UTC."""
    raw = value.strip()
    if not raw:
        return None
    try:
        if raw.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(raw), UTC)
        parsed = datetime.fromisoformat(raw)
    except (ValueError, OverflowError) as exc:
        raise CdrRowError(f"bad timestamp {raw!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)  # ambiguous DST hour: the first occurrence (fold=0)
    return parsed.astimezone(UTC)


def _seconds(value: str, start: datetime, end: datetime | None) -> int:
    raw = value.strip()
    if not raw:
        return int((end - start).total_seconds()) if end else 0
    if not raw.isdigit():
        raise CdrRowError(f"bad duration {raw!r}")
    return int(raw)


def _disposition(answered: bool, hint: str) -> str:
    if answered:
        return "answered"
    key = hint.strip().upper().replace(" ", "_").replace("-", "_")
    return _FAILURE_HINTS.get(key, "no-answer")


def _direction(caller: Address, callee: Address, hub_numbers: frozenset[str]) -> Direction:
    """Inbound when the hub was called; outbound when a hub number or an extension called out."""
    if callee.value in hub_numbers:
        return Direction.IN
    if caller.value in hub_numbers:
        return Direction.OUT
    internal_caller = caller.value.startswith("ext:")
    return Direction.OUT if internal_caller and not callee.value.startswith("ext:") else Direction.IN


def row_id(fields: Iterable[str]) -> str:
    """A stable id for a row without a uniqueid: sha256 of its trimmed fields."""
    joined = "\x1f".join(field.strip() for field in fields)
    return "sha256:" + hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _to_call(rec: _Record, fields: list[str], raw: str, ctx: _Context) -> CallLog:
    start = local_time(rec.start, ctx.zone)
    if start is None:
        raise CdrRowError("missing start time")
    answered, ended = local_time(rec.answer, ctx.zone), local_time(rec.end, ctx.zone)
    caller = party(rec.src, ctx.region, _caller_name(rec.clid, rec.src))
    callee = party(rec.dst, ctx.region)
    return CallLog(
        external_id=rec.uid.strip() or row_id(fields),
        direction=_direction(caller, callee, ctx.hub_numbers),
        caller=caller,
        callee=callee,
        started_at=start,
        source=ctx.source,
        answered_at=answered,
        ended_at=ended,
        duration_s=_seconds(rec.duration, start, ended),
        disposition=_disposition(answered is not None, rec.disposition),
        recording_url=rec.recording_url.strip() or None,
        raw=raw.encode("utf-8"),
    )


def _records(lines: Iterable[str]) -> Iterator[tuple[int, str, list[str] | csv.Error]]:
    """(first line number, raw text, fields) per CSV record; a csv.Error is yielded, not raised."""
    consumed: list[str] = []

    def tap() -> Iterator[str]:
        for line in lines:
            consumed.append(line)  # the record's exact text, kept for quarantine and replay
            yield line

    reader = csv.reader(tap())
    last_line = 0
    while True:
        try:
            fields: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields = exc
        first, last_line = last_line + 1, reader.line_num
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        if fields != []:  # a blank line
            yield first, raw, fields


def _rows(lines: Iterable[str], layout: Layout, ctx: _Context) -> Iterator[Result]:
    for line_no, raw, fields in _records(lines):
        if isinstance(fields, csv.Error):
            yield CdrError(line_no, f"unreadable CSV: {fields}", raw)
            continue
        try:
            yield CdrRow(line_no, _to_call(layout(fields), fields, raw, ctx))
        except CdrRowError as exc:
            yield CdrError(line_no, str(exc), raw)


def _context(source: str, hub_numbers: Iterable[str], region: str, tz: str) -> _Context:
    hubs = frozenset(party(number, region).value for number in hub_numbers)
    return _Context(source, region, ZoneInfo(tz), hubs)


def _columns(fields: list[str], allowed: Iterable[int], minimum: int | None = None) -> None:
    allowed = tuple(allowed)
    if len(fields) in allowed or (minimum is not None and len(fields) >= minimum):
        return
    expected = f"at least {minimum}" if minimum is not None else " or ".join(map(str, allowed))
    raise CdrRowError(f"expected {expected} columns, got {len(fields)}")


def _asterisk_master(f: list[str]) -> _Record:
    # cdr_csv.c: accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    # start, answer, end, duration, billsec, disposition, amaflags, [uniqueid], [userfield],
    # and with newcdrcolumns=yes: peeraccount, linkedid, sequence.
    _columns(f, (16, 17, 18, 21))
    uid = f[16] if len(f) > 16 else ""
    # Asterisk 12+ writes several CDRs per call sharing a uniqueid; the sequence tells them apart.
    if len(f) == 21 and uid:
        uid = f"{uid}-{f[20]}"
    return _Record(f[1], f[2], f[4], f[9], f[10], f[11], f[12], f[14], uid)


def _asterisk_custom(f: list[str]) -> _Record:
    # cdr_custom.conf sample: clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata,
    # start, answer, end, duration, billsec, disposition, amaflags, accountcode, uniqueid,
    # userfield, sequence (later columns are whatever the site appended).
    _columns(f, (), minimum=18)
    uid = f[16]
    if len(f) > 18 and uid and f[18].strip():
        uid = f"{uid}-{f[18]}"
    return _Record(f[1], f[2], f[0], f[8], f[9], f[10], f[11], f[13], uid)


def _freeswitch(f: list[str]) -> _Record:
    # mod_cdr_csv default template: caller_id_name, caller_id_number, destination_number,
    # context, start_stamp, answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid,
    # bleg_uuid, accountcode, read_codec, write_codec.
    _columns(f, (15,))
    return _Record(f[1], f[2], f[0], f[4], f[5], f[6], f[7], f[9], f[10])


def parse_asterisk_csv(
    lines: Iterable[str], *, hub_numbers: Iterable[str] = (), region: str = "IT", tz: str = "Europe/Rome"
) -> Iterator[Result]:
    """Parse Asterisk cdr_csv `Master.csv` rows."""
    return _rows(lines, _asterisk_master, _context("asterisk", hub_numbers, region, tz))


def parse_asterisk_custom(
    lines: Iterable[str], *, hub_numbers: Iterable[str] = (), region: str = "IT", tz: str = "Europe/Rome"
) -> Iterator[Result]:
    """Parse Asterisk cdr_custom rows in the sample mapping, which starts with clid."""
    return _rows(lines, _asterisk_custom, _context("asterisk", hub_numbers, region, tz))


def parse_freeswitch_csv(
    lines: Iterable[str], *, hub_numbers: Iterable[str] = (), region: str = "IT", tz: str = "Europe/Rome"
) -> Iterator[Result]:
    """Parse FreeSWITCH mod_cdr_csv rows in the default template."""
    return _rows(lines, _freeswitch, _context("freeswitch", hub_numbers, region, tz))


def parse_mapping(spec: str) -> dict[str, str]:
    """Parse `--map "from=caller,to=callee,..."` into {csv column: hub field}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or target.strip() not in GENERIC_FIELDS:
            fields = ", ".join(sorted(GENERIC_FIELDS))
            raise ValueError(f"bad mapping {item!r}: expected column=field with field one of {fields}")
        mapping[column.strip()] = target.strip()
    return mapping


def _generic_layout(header: list[str], mapping: Mapping[str, str]) -> Layout:
    """A layout reading the mapped columns by their position in `header`."""
    missing_fields = [field for field in GENERIC_REQUIRED if field not in mapping.values()]
    if missing_fields:
        raise CdrRowError(f"the mapping gives no column for {', '.join(missing_fields)}")
    positions = {name.strip(): i for i, name in enumerate(header)}
    absent = [column for column in mapping if column not in positions]
    if absent:
        raise CdrRowError(f"columns not in the header: {', '.join(absent)}")
    where = {field: positions[column] for column, field in mapping.items()}

    def layout(f: list[str]) -> _Record:
        _columns(f, (len(header),))
        get = {field: f[i] for field, i in where.items()}.get
        return _Record(
            get("caller", ""),
            get("callee", ""),
            get("caller_name", ""),
            get("start", ""),
            get("answer", ""),
            get("end", ""),
            get("duration", ""),
            get("disposition", ""),
            get("id", ""),
            get("recording_url", ""),
        )

    return layout


def parse_generic_csv(
    lines: Iterable[str],
    mapping: Mapping[str, str],
    *,
    hub_numbers: Iterable[str] = (),
    region: str = "IT",
    tz: str = "Europe/Rome",
) -> Iterator[Result]:
    """Parse a CSV with a header row; `mapping` is {csv column: hub field} (see parse_mapping)."""
    ctx = _context("cdr", hub_numbers, region, tz)
    iterator = iter(lines)
    header_line = next(iterator, "")
    try:
        layout = _generic_layout(next(csv.reader([header_line]), []), mapping)
    except CdrRowError as exc:
        yield CdrError(1, f"header: {exc}", header_line.rstrip("\r\n"))
        return
    for result in _rows(iterator, layout, ctx):
        # _rows counts from the line after the header
        if isinstance(result, CdrRow):
            yield CdrRow(result.line_no + 1, result.call)
        else:
            yield CdrError(result.line_no + 1, result.message, result.raw)


PARSERS: Mapping[str, Callable[..., Iterator[Result]]] = {
    "asterisk": parse_asterisk_csv,
    "asterisk-custom": parse_asterisk_custom,
    "freeswitch": parse_freeswitch_csv,
    "generic": parse_generic_csv,
}
