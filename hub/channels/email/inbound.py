"""Raw mail into the hub: parse, then ingest an Inbound or apply a bounce; what fails is quarantined.

Every mailbox (IMAP poller, `hub ingest email`) calls `ingest_raw`, so there is one place that
decides between stored, duplicate, bounce and quarantine, and one place that catches parse crashes.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError

from hub import runtime as hub_runtime
from hub.channels.email.bulk import (
    Parsed,
    ParseFailure,
    ParseOptions,
    parse_batches,
    parse_many,
    parse_with,
)
from hub.core.delivery import apply_update
from hub.core.envelopes import DeliveryUpdate, Flag, Inbound
from hub.core.identity import InvalidAddress, normalise_email
from hub.core.ingest import IngestResult, Outcome, ingest_batch, ingest_once, quarantine
from hub.store.models import QuarantineItem

if TYPE_CHECKING:
    from hub.runtime import Runtime
    from hub.settings import Settings

log = logging.getLogger(__name__)

# Connection trouble with the database is ours, not the message's: let it propagate so the
# mailbox is not acknowledged and the message is fetched again later (never quarantined).
_OUTAGE = (OperationalError, InterfaceError, OSError)


class EmailOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    BOUNCE = "bounce"
    AUTOREPLY = "autoreply"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class EmailResult:
    """What happened to one raw mail; `parsed` is None when it could not be parsed."""

    outcome: EmailOutcome
    source: str
    parsed: Inbound | DeliveryUpdate | None = None
    ingest: IngestResult | None = None
    original_message_id: int | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON object `hub ingest email --json` prints for this message."""
        item = self.parsed if isinstance(self.parsed, Inbound) else None
        result = self.ingest
        return {
            "source": self.source,
            "outcome": self.outcome.value,
            "customer_id": result.customer_id if result else None,
            "conversation_id": result.conversation_id if result else None,
            "message_id": result.message_id if result else self.original_message_id,
            "from": item.sender.value if item else None,
            "subject": item.subject if item else None,
            "text": (item.visible_text if item.visible_text is not None else item.body_text) if item else None,
            "attachments": [a.filename for a in item.attachments] if item else [],
            "flags": sorted(f.value for f in item.flags) if item else [],
            "error": self.error,
        }


def own_addresses(settings: Settings, mailboxes: tuple[str, ...] = ()) -> frozenset[str]:
    """The hub's own sending and receiving addresses, lower-cased."""
    found = {settings.smtp_from, settings.imap_address or "", *mailboxes}
    return frozenset(a.strip().lower() for a in found if a)


def parse_options(settings: Settings, mailbox: str) -> ParseOptions:
    """The settings parsing needs, for mail received at `mailbox` (picklable, for parser processes)."""
    return ParseOptions(mailbox=mailbox, region=settings.default_region,
                        max_attachment_bytes=settings.email_max_attachment_bytes,
                        own=own_addresses(settings, (mailbox,)), mail_domain=settings.mail_domain)


def parse_raw(raw: bytes, *, mailbox: str, settings: Settings) -> Inbound | DeliveryUpdate:
    """Parse with the hub's settings, flagging mail that comes from the hub itself."""
    return parse_with(raw, parse_options(settings, mailbox))


def _outcome(item: Inbound, result: IngestResult) -> EmailOutcome:
    if result.outcome is Outcome.DUPLICATE:
        return EmailOutcome.DUPLICATE
    if item.flags & {Flag.AUTOREPLY, Flag.BOUNCE, Flag.BULK}:
        return EmailOutcome.AUTOREPLY
    return EmailOutcome.STORED


async def _quarantine(runtime: Runtime, raw: bytes, source: str, stage: str, exc: BaseException) -> EmailResult:
    result = await quarantine(runtime.factory, stage=stage, error=exc, raw=raw, channel="email", source=source)
    log.info("mail from %s quarantined at %s: %s", source, stage, result.error)
    return EmailResult(EmailOutcome.QUARANTINED, source, ingest=result, error=result.error)


async def _apply_bounce(runtime: Runtime, raw: bytes, update: DeliveryUpdate, source: str) -> EmailResult:
    async with runtime.factory() as session, session.begin():
        original = await apply_update(session, update, tuple(runtime.handlers))
    if original is None:
        # A report about mail we never sent (or long deleted): keep it for a human to look at.
        error = LookupError(f"bounce for unknown message <{update.original_ref}>")
        return await _quarantine(runtime, raw, source, "email.bounce", error)
    return EmailResult(EmailOutcome.BOUNCE, source, update, original_message_id=original.id)


async def _unsubscribe(runtime: Runtime, raw: bytes, item: Inbound, source: str) -> EmailResult | None:
    """Mail to a signed List-Unsubscribe address, applied as a consent change; None for ordinary mail."""
    hook = runtime.extras.get(hub_runtime.UNSUBSCRIBE_MAIL)
    if hook is None:
        return None
    try:
        if not await hook(runtime, item):
            return None
    except _OUTAGE:
        raise
    except Exception as exc:  # one catch point, as in ingest_raw: keep the bytes and the error
        log.exception("unsubscribe mail from %s failed", source)
        return await _quarantine(runtime, raw, source, "email.unsubscribe", exc)
    return EmailResult(EmailOutcome.UNSUBSCRIBE, source, item)


async def ingest_raw(runtime: Runtime, raw: bytes, *, mailbox: str, source: str) -> EmailResult:
    """Ingest one raw mail received at `mailbox`; commits before returning (ack after this)."""
    try:
        parsed = parse_raw(raw, mailbox=mailbox, settings=runtime.settings)
    except Exception as exc:  # one catch point: whatever the parser trips on, the raw bytes are kept
        return await _quarantine(runtime, raw, source, "email.parse", exc)
    return await _ingest_parsed(runtime, raw, parsed, source)


async def _ingest_parsed(runtime: Runtime, raw: bytes, parsed: Inbound | DeliveryUpdate, source: str) -> EmailResult:
    """Store one parsed mail (or apply its bounce) in its own transaction; what the store refuses is quarantined."""
    if isinstance(parsed, Inbound) and (done := await _unsubscribe(runtime, raw, parsed, source)) is not None:
        return done
    try:
        if isinstance(parsed, DeliveryUpdate):
            return await _apply_bounce(runtime, raw, parsed, source)
        result = await ingest_once(runtime.factory, parsed, runtime.ingest_context)
    except _OUTAGE:
        raise
    except Exception as exc:  # bad data for the store (a too-long value, a rule that crashes): shunt it
        log.exception("storing mail from %s failed", source)
        return await _quarantine(runtime, raw, source, "email.ingest", exc)
    return EmailResult(_outcome(parsed, result), source, parsed, result)


async def ingest_raw_many(runtime: Runtime, mails: list[tuple[bytes, str]], *, mailbox: str) -> list[EmailResult]:
    """Ingest (raw, source) pairs, storing the parsed ones in one transaction; results in input order."""
    parsed = parse_many([raw for raw, _ in mails], parse_options(runtime.settings, mailbox))
    return await store_parsed(runtime, mails, parsed)


async def ingest_stream(
    runtime: Runtime, mails: Iterable[tuple[bytes, str]], *, mailbox: str, batch: int,
    pool: Executor | None = None, ahead: int = 4,
) -> AsyncIterator[list[EmailResult]]:
    """Ingest many mails batch by batch (results of each batch in input order, once it has committed).

    With a process pool, up to `ahead` next batches are parsed there while this process stores
    the current one; the results are those of the single-process path.
    """
    options = parse_options(runtime.settings, mailbox)
    async for chunk, parsed in parse_batches(mails, options, batch=batch, pool=pool, ahead=ahead):
        yield await store_parsed(runtime, chunk, parsed)


async def store_parsed(runtime: Runtime, mails: list[tuple[bytes, str]], parsed: list[Parsed]) -> list[EmailResult]:
    """Store a batch of parsed mails: unparseable ones quarantined, bounces applied, the rest in one transaction.

    If the batch's transaction fails on one message's data, every message of it is retried alone,
    so only the culprit is quarantined.
    """
    results: dict[int, EmailResult] = {}
    batch: list[tuple[int, Inbound]] = []
    broken: list[tuple[int, ParseFailure]] = []
    bounces: list[tuple[int, DeliveryUpdate]] = []
    for index, ((raw, source), item) in enumerate(zip(mails, parsed, strict=True)):
        if isinstance(item, ParseFailure):
            broken.append((index, item))
        elif isinstance(item, DeliveryUpdate):
            bounces.append((index, item))
        elif (done := await _unsubscribe(runtime, raw, item, source)) is not None:
            results[index] = done
        else:
            batch.append((index, item))
    if broken:
        results.update(await _quarantine_parse_errors(runtime, broken, mails))
    if bounces:
        results.update(await _apply_bounces(runtime, bounces, mails))
    if batch:
        results.update(await _store_batch(runtime, batch, mails))
    return [results[index] for index in range(len(mails))]


async def _apply_bounces(
    runtime: Runtime, bounces: list[tuple[int, DeliveryUpdate]], mails: list[tuple[bytes, str]]
) -> dict[int, EmailResult]:
    """A batch's bounces in one transaction; a report about mail we never sent is quarantined in it."""
    results: dict[int, EmailResult] = {}
    unknown: list[tuple[int, QuarantineItem]] = []
    try:
        async with runtime.factory() as session, session.begin():
            for index, update in bounces:
                original = await apply_update(session, update, tuple(runtime.handlers))
                if original is None:
                    unknown.append((index, _unknown_bounce(mails[index], update)))
                    continue
                results[index] = EmailResult(EmailOutcome.BOUNCE, mails[index][1], update,
                                             original_message_id=original.id)
            session.add_all([row for _, row in unknown])
            await session.flush()
    except _OUTAGE:
        raise
    except Exception:  # one report's data broke the batch: apply them one at a time
        log.warning("batch of %d bounces failed; applying them one by one", len(bounces), exc_info=True)
        return {index: await _ingest_parsed(runtime, mails[index][0], update, mails[index][1])
                for index, update in bounces}
    for index, row in unknown:
        log.info("mail from %s quarantined at email.bounce: %s", row.source, row.error)
        results[index] = EmailResult(EmailOutcome.QUARANTINED, row.source or "", error=row.error, ingest=IngestResult(
            Outcome.QUARANTINED, quarantine_id=row.id, error=row.error))
    return results


def _unknown_bounce(mail: tuple[bytes, str], update: DeliveryUpdate) -> QuarantineItem:
    """The quarantine row of a bounce about mail we never sent (or long deleted), for a human to look at."""
    error = LookupError(f"bounce for unknown message <{update.original_ref}>")
    return QuarantineItem(stage="email.bounce", channel="email", source=mail[1], raw=mail[0], payload={},
                          error=f"{type(error).__name__}: {error}",
                          traceback="".join(traceback.format_exception(error)))


async def _quarantine_parse_errors(
    runtime: Runtime, broken: list[tuple[int, ParseFailure]], mails: list[tuple[bytes, str]]
) -> dict[int, EmailResult]:
    """Quarantine a batch's unparseable mails in one transaction, raw bytes and error kept."""
    rows = [(index, QuarantineItem(
        stage="email.parse", channel="email", source=mails[index][1], raw=mails[index][0],
        error=failure.error, traceback=failure.traceback,
    )) for index, failure in broken]
    async with runtime.factory() as session, session.begin():
        session.add_all([row for _, row in rows])
        await session.flush()
    log.info("%d mails quarantined at email.parse", len(rows))
    return {index: EmailResult(
        EmailOutcome.QUARANTINED, row.source or "", error=row.error,
        ingest=IngestResult(Outcome.QUARANTINED, quarantine_id=row.id, error=row.error),
    ) for index, row in rows}


async def _store_batch(
    runtime: Runtime, batch: list[tuple[int, Inbound]], mails: list[tuple[bytes, str]]
) -> dict[int, EmailResult]:
    try:
        stored = await ingest_batch(runtime.factory, [item for _, item in batch], runtime.ingest_context)
    except _OUTAGE:
        raise
    except Exception:  # some message's data broke the batch: find it by ingesting one at a time
        log.warning("batch of %d mails failed; ingesting them one by one", len(batch), exc_info=True)
        return {index: await _ingest_parsed(runtime, mails[index][0], item, mails[index][1])
                for index, item in batch}
    return {index: EmailResult(_outcome(item, result), mails[index][1], item, result)
            for (index, item), result in zip(batch, stored, strict=True)}


def mailbox_address(value: str) -> str:
    """A mailbox address as parse() expects it; ValueError naming it when it is not an address."""
    try:
        return normalise_email(value)
    except InvalidAddress as exc:
        raise ValueError(f"{value!r} is not an email address: {exc}") from None
