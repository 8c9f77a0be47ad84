"""Raw mail into the hub: parse, then ingest an Inbound or apply a bounce; what fails is quarantined.

Every mailbox (IMAP poller, `hub ingest email`) calls `ingest_raw`, so there is one place that
decides between stored, duplicate, bounce and quarantine, and one place that catches parse crashes.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError

from hub import runtime as hub_runtime
from hub.channels.email.parse import parse
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


def is_own_mail(address: str, own: frozenset[str], mail_domain: str) -> bool:
    """Mail from ourselves (our addresses, or any reply+token address of our mail domain)."""
    value = address.lower()
    return value in own or value.rsplit("@", 1)[-1] == mail_domain.lower()


def parse_raw(raw: bytes, *, mailbox: str, settings: Settings) -> Inbound | DeliveryUpdate:
    """Parse with the hub's settings, flagging mail that comes from the hub itself."""
    parsed = parse(raw, mailbox=mailbox, region=settings.default_region,
                   max_attachment_bytes=settings.email_max_attachment_bytes)
    if isinstance(parsed, Inbound) and is_own_mail(
        parsed.sender.value, own_addresses(settings, (mailbox,)), settings.mail_domain
    ):
        # Our own mail looping back (a forward rule, a reply-all to ourselves): stored, never answered.
        parsed = dataclasses.replace(parsed, flags=parsed.flags | {Flag.OWN_MAIL})
    return parsed


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
    """Ingest (raw, source) pairs, storing the parsed ones in one transaction; results in input order.

    If the batch's transaction fails on one message's data, every message of it is retried alone,
    so only the culprit is quarantined.
    """
    results: dict[int, EmailResult] = {}
    batch: list[tuple[int, Inbound]] = []
    broken: list[tuple[int, BaseException]] = []
    for index, (raw, source) in enumerate(mails):
        try:
            parsed = parse_raw(raw, mailbox=mailbox, settings=runtime.settings)
        except Exception as exc:  # one catch point, as in ingest_raw: keep the bytes and the error
            broken.append((index, exc))
            continue
        if isinstance(parsed, DeliveryUpdate):
            results[index] = await ingest_raw(runtime, raw, mailbox=mailbox, source=source)
        elif (done := await _unsubscribe(runtime, raw, parsed, source)) is not None:
            results[index] = done
        else:
            batch.append((index, parsed))
    if broken:
        results.update(await _quarantine_parse_errors(runtime, broken, mails))
    if batch:
        results.update(await _store_batch(runtime, batch, mails, mailbox))
    return [results[index] for index in range(len(mails))]


async def _quarantine_parse_errors(
    runtime: Runtime, broken: list[tuple[int, BaseException]], mails: list[tuple[bytes, str]]
) -> dict[int, EmailResult]:
    """Quarantine a batch's unparseable mails in one transaction, raw bytes and error kept."""
    rows = [(index, QuarantineItem(
        stage="email.parse", channel="email", source=mails[index][1], raw=mails[index][0],
        error=f"{type(exc).__name__}: {exc}", traceback="".join(traceback.format_exception(exc)),
    )) for index, exc in broken]
    async with runtime.factory() as session, session.begin():
        session.add_all([row for _, row in rows])
        await session.flush()
    log.info("%d mails quarantined at email.parse", len(rows))
    return {index: EmailResult(
        EmailOutcome.QUARANTINED, row.source or "", error=row.error,
        ingest=IngestResult(Outcome.QUARANTINED, quarantine_id=row.id, error=row.error),
    ) for index, row in rows}


async def _store_batch(
    runtime: Runtime, batch: list[tuple[int, Inbound]], mails: list[tuple[bytes, str]], mailbox: str
) -> dict[int, EmailResult]:
    try:
        stored = await ingest_batch(runtime.factory, [item for _, item in batch], runtime.ingest_context)
    except _OUTAGE:
        raise
    except Exception:  # some message's data broke the batch: find it by ingesting one at a time
        log.warning("batch of %d mails failed; ingesting them one by one", len(batch), exc_info=True)
        return {index: await ingest_raw(runtime, mails[index][0], mailbox=mailbox, source=mails[index][1])
                for index, _ in batch}
    return {index: EmailResult(_outcome(item, result), mails[index][1], item, result)
            for (index, item), result in zip(batch, stored, strict=True)}


def mailbox_address(value: str) -> str:
    """A mailbox address as parse() expects it; ValueError naming it when it is not an address."""
    try:
        return normalise_email(value)
    except InvalidAddress as exc:
        raise ValueError(f"{value!r} is not an email address: {exc}") from None
