"""`hub ingest calls FILE --format ...`: import PBX call records onto customer timelines."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from hub import runtime as hub_runtime
from hub.channels.phone.cdr import PARSERS, CdrError, Result, parse_mapping
from hub.channels.phone.importer import ImportSummary, import_calls
from hub.settings import Settings, SettingsError, load_settings

FORMATS = {"asterisk": "asterisk", "asterisk-custom": "asterisk-custom", "freeswitch": "freeswitch",
           "csv": "generic"}
DEFAULT_MAP = "id=id,caller=caller,callee=callee,start=start,answer=answer,end=end,duration=duration"


def _counted(lines: IO[str], bar: Any) -> Iterator[str]:
    for line in lines:
        bar.update(1)
        yield line


def _results(
    fmt: str, lines: Iterator[str], mapping: str | None, options: dict[str, Any]
) -> Iterator[Result]:
    parser = PARSERS[FORMATS[fmt]]
    if fmt == "csv":
        return parser(lines, parse_mapping(mapping or DEFAULT_MAP), **options)
    return parser(lines, **options)


async def _run(
    settings: Settings, path: Path, fmt: str, mapping: str | None, options: dict[str, Any], total: int
) -> ImportSummary:

    def report(error: CdrError) -> None:
        click.echo(f"\n{path}:{error.line_no}: {error.message}", err=True)

    async with hub_runtime.running(settings, workers=False) as runtime:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle, click.progressbar(
            length=total, label=f"importing {path.name}", file=sys.stderr
        ) as bar:
            return await import_calls(runtime, _results(fmt, _counted(handle, bar), mapping, options), report)


def _line_count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _check(mapping: str | None, tz: str) -> None:
    if mapping is not None:
        try:
            parse_mapping(mapping)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--map") from None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {tz!r}", param_hint="--tz") from None


@click.command("calls")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), required=True, help="The CDR layout.")
@click.option("--map", "mapping", default=None,
              help='For --format csv: "column=field,..." with fields caller, callee, start, answer, end, '
                   "duration, disposition, id, caller_name, recording_url.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--hub-number", "hub_numbers", multiple=True, help="The hotel's own numbers (repeatable).")
@click.option("--tz", default="Europe/Rome", show_default=True, help="Zone of timestamps without an offset.")
@click.option("--region", default=None, help="Region of numbers without a country code [HUB_DEFAULT_REGION].")
def calls(file: Path, fmt: str, mapping: str | None, as_json: bool, hub_numbers: tuple[str, ...], tz: str,
          region: str | None) -> None:
    """Import call records; bad rows are reported as FILE:LINE and the good ones still import."""
    _check(mapping, tz)
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        total = _line_count(file)
    except OSError as exc:
        click.echo(f"{file}: cannot read: {exc.strerror or exc}", err=True)
        sys.exit(1)
    options = {"hub_numbers": hub_numbers, "tz": tz, "region": region or settings.default_region}
    summary = asyncio.run(_run(settings, file, fmt, mapping, options, total))
    if as_json:
        click.echo(json.dumps(summary.as_json()))
    else:
        counts = summary.as_json()
        click.echo(", ".join(f"{k} {len(v) if isinstance(v, list) else v}" for k, v in counts.items()))
