"""Parsing mail in bulk: the same parse with the hub's options, in this process or in parser processes.

A bulk import (`hub ingest email`) is CPU-bound on parsing; the store writes one transaction per
batch. `parse_batches` parses the next batches in a process pool while the caller stores the
current one. Everything a parser process gets or returns is plain picklable data: the raw bytes,
`ParseOptions`, and an `Inbound`, a `DeliveryUpdate` or a `ParseFailure` (error and traceback as
text) per mail, so the results are the same as parsing here, whichever process did it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import traceback
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import TypeVar

from hub.channels.email.parse import parse
from hub.core.envelopes import DeliveryUpdate, Flag, Inbound

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """What parsing needs from the settings, for one receiving mailbox; `now` fixes the clock (tests)."""

    mailbox: str
    region: str
    max_attachment_bytes: int
    own: frozenset[str]
    mail_domain: str
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A mail parse() refused or crashed on, with the error as `Type: message` and its traceback."""

    error: str
    traceback: str


Parsed = Inbound | DeliveryUpdate | ParseFailure


def is_own_mail(address: str, own: frozenset[str], mail_domain: str) -> bool:
    """Mail from ourselves (our addresses, or any reply+token address of our mail domain)."""
    value = address.lower()
    return value in own or value.rsplit("@", 1)[-1] == mail_domain.lower()


def parse_with(raw: bytes, options: ParseOptions) -> Inbound | DeliveryUpdate:
    """parse(), flagging mail that comes from the hub itself; raises what parse() raises."""
    parsed = parse(raw, mailbox=options.mailbox, region=options.region,
                   max_attachment_bytes=options.max_attachment_bytes, now=options.now)
    if isinstance(parsed, Inbound) and is_own_mail(parsed.sender.value, options.own, options.mail_domain):
        # Our own mail looping back (a forward rule, a reply-all to ourselves): stored, never answered.
        parsed = dataclasses.replace(parsed, flags=parsed.flags | {Flag.OWN_MAIL})
    return parsed


def parse_one(raw: bytes, options: ParseOptions) -> Parsed:
    """parse_with(), with a failure returned as data instead of raised."""
    try:
        return parse_with(raw, options)
    except Exception as exc:  # one catch point: whatever the parser trips on is reported with the mail
        return ParseFailure(f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))


def parse_many(raws: list[bytes], options: ParseOptions) -> list[Parsed]:
    """One result per mail, in order (the unit of work of a parser process)."""
    return [parse_one(raw, options) for raw in raws]


def parser_pool(workers: int) -> ProcessPoolExecutor:
    """Parser processes started by a fork server (this process has threads: no plain fork)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


async def warm_up(pool: Executor, workers: int) -> None:
    """Start every parser process now (they import the parser once), not on the first batch."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, parse_many, [], _NO_OPTIONS) for _ in range(workers)))


_NO_OPTIONS = ParseOptions(mailbox="warm-up@localhost", region="IT", max_attachment_bytes=0, own=frozenset(),
                           mail_domain="localhost")


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


Pending = tuple[list[tuple[bytes, str]], "asyncio.Future[list[Parsed]] | None"]


def _submit(pool: Executor, chunk: list[tuple[bytes, str]], options: ParseOptions) -> Pending:
    """Hand a batch to the pool; no future when the pool is already broken."""
    try:
        future = asyncio.get_running_loop().run_in_executor(pool, parse_many, [raw for raw, _ in chunk], options)
    except BrokenExecutor:
        return chunk, None
    return chunk, future


async def _result(pending: Pending, options: ParseOptions) -> list[Parsed]:
    """The pool's result for a batch, or the batch parsed here when the pool lost a process (OOM...)."""
    chunk, future = pending
    if future is not None:
        try:
            return await future
        except BrokenExecutor:
            pass
    log.warning("parser process lost; parsing a batch of %d mails in this process", len(chunk))
    return parse_many([raw for raw, _ in chunk], options)  # outside the except: no chained error in tracebacks


async def parse_batches(
    mails: Iterable[tuple[bytes, str]], options: ParseOptions, *, batch: int, pool: Executor | None, ahead: int = 4,
) -> AsyncIterator[tuple[list[tuple[bytes, str]], list[Parsed]]]:
    """(mails, parsed) batch by batch, in input order; with a pool, up to `ahead` batches parse meanwhile."""
    chunks = _chunks(mails, batch)
    if pool is None:
        for chunk in chunks:
            yield chunk, parse_many([raw for raw, _ in chunk], options)
        return
    pending: deque[Pending] = deque(_submit(pool, chunk, options) for chunk in islice(chunks, max(1, ahead)))
    try:
        while pending:
            current = pending.popleft()
            parsed = await _result(current, options)
            for chunk in islice(chunks, 1):  # the next batch, if any, takes the freed place
                pending.append(_submit(pool, chunk, options))
            yield current[0], parsed
    finally:
        for _, left in pending:  # the caller stopped early: drop the batches not yet stored
            if left is not None:
                left.cancel()
