"""`hub ingest email PATH...`: import .eml files, mbox files and Maildir folders through the ingest path."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import mailbox as stdlib_mailbox
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import click

from hub import runtime as hub_runtime
from hub.channels.email.bulk import parser_pool, warm_up
from hub.channels.email.inbound import EmailOutcome, EmailResult, ingest_stream, mailbox_address, parse_raw
from hub.core.envelopes import DeliveryUpdate, Flag
from hub.settings import Settings, SettingsError, load_settings

BATCH = 200


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def _count(path: Path) -> int:
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            return len(stdlib_mailbox.Maildir(path, factory=None, create=False))
        return sum(_count(p) for p in sorted(path.rglob("*.eml")))
    if _is_mbox(path):
        mbox = stdlib_mailbox.mbox(path, factory=None, create=False)
        try:
            return len(mbox)
        finally:
            mbox.close()
    return 1


def read_mails(path: Path) -> Iterator[tuple[bytes, str]]:
    """(raw bytes, source label) of every message under `path`: a Maildir, an mbox, a folder of .eml, a file."""
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            box: stdlib_mailbox.Mailbox[Any] = stdlib_mailbox.Maildir(path, factory=None, create=False)
            for key in sorted(box.keys()):
                yield box.get_bytes(key), f"{path}/{key}"
            return
        for child in sorted(path.rglob("*.eml")):
            yield child.read_bytes(), str(child)
        return
    if _is_mbox(path):
        mbox = stdlib_mailbox.mbox(path, factory=None, create=False)
        try:
            for number, key in enumerate(mbox.keys(), start=1):
                yield mbox.get_bytes(key), f"{path}#{number}"
        finally:
            mbox.close()
        return
    yield path.read_bytes(), str(path)


def dry_run(raw: bytes, source: str, *, mailbox: str, settings: Settings) -> EmailResult:
    """Parse only; the outcome is what ingest would do, short of duplicate detection."""
    try:
        parsed = parse_raw(raw, mailbox=mailbox, settings=settings)
    except Exception as exc:  # one catch point, as in ingest: report what would be quarantined
        return EmailResult(EmailOutcome.QUARANTINED, source, error=f"{type(exc).__name__}: {exc}")
    if isinstance(parsed, DeliveryUpdate):
        return EmailResult(EmailOutcome.BOUNCE, source, parsed)
    noisy = parsed.flags & {Flag.AUTOREPLY, Flag.BOUNCE, Flag.BULK}
    return EmailResult(EmailOutcome.AUTOREPLY if noisy else EmailOutcome.STORED, source, parsed)


def _emit(results: list[EmailResult], as_json: bool, totals: dict[str, int]) -> None:
    for result in results:
        totals[result.outcome.value] = totals.get(result.outcome.value, 0) + 1
        if as_json:
            click.echo(json.dumps(result.summary(), ensure_ascii=False, default=str))


@contextlib.contextmanager
def _parsers(workers: int) -> Iterator[Executor | None]:
    """A pool of parser processes, or None to parse in this process."""
    if workers <= 0:
        yield None
        return
    with parser_pool(workers) as pool:
        yield pool


async def _run(
    settings: Settings, paths: tuple[Path, ...], mailbox: str, as_json: bool, dry: bool, workers: int | None,
) -> dict[str, int]:
    totals: dict[str, int] = {}
    total = sum(_count(p) for p in paths)
    if workers is None:  # a pool pays for its start-up only on imports of more than one batch
        workers = (os.cpu_count() or 1) if total > BATCH else 0
    with click.progressbar(length=total, label="ingesting mail", file=sys.stderr) as bar:
        if dry:
            for path in paths:
                for raw, source in read_mails(path):
                    _emit([dry_run(raw, source, mailbox=mailbox, settings=settings)], as_json, totals)
                    bar.update(1)
            return totals
        async with hub_runtime.running(settings) as runtime:
            with _parsers(workers) as pool:
                if pool is not None:
                    await warm_up(pool, workers)
                mails = itertools.chain.from_iterable(read_mails(path) for path in paths)
                async for results in ingest_stream(runtime, mails, mailbox=mailbox, batch=BATCH, pool=pool,
                                                   ahead=2 * max(workers, 1)):
                    _emit(results, as_json, totals)
                    bar.update(len(results))
            if (queue := hub_runtime.inprocess(runtime)) is not None:
                await queue.drain()  # auto-replies decided by routing go out before we exit
    return totals


@click.command("email")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--mailbox", "to", default=None, help="The address these mails were sent to [HUB_SMTP_FROM].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per message on stdout.")
@click.option("--dry-run", is_flag=True, help="Parse and print without storing anything.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Parser processes (0: parse in this process) [one per CPU for more than one batch].")
def email_command(
    paths: tuple[Path, ...], to: str | None, as_json: bool, dry_run: bool, workers: int | None
) -> None:
    """Import .eml files, mbox files and Maildir folders (PATH...) as received mail."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        mailbox = mailbox_address(to or settings.imap_address or settings.smtp_from)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mailbox") from None
    totals = asyncio.run(_run(settings, paths, mailbox, as_json, dry_run, workers))
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(totals.items())) or "no messages"
    click.echo(f"{'parsed' if dry_run else 'ingested'}: {summary}", err=True)

