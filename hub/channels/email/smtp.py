"""The email Sender: aiosmtplib over a small pool of connected clients, one SendResult per message.

SMTP replies map onto the outbox's two kinds of failure: 4xx (and lost connections) are
transient and retried with backoff; 5xx is permanent and marks the message failed with the
server's reason. A 2xx keeps the server's reply as the delivery detail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from hub.channels.email.compose import HeaderInjectionError, build_message, plain_address, render
from hub.core.envelopes import Outbound, SendResult

log = logging.getLogger(__name__)

_MSGID = re.compile(r"<([^<>\s]+)>")
# Headers the sender takes from Outbound.headers itself (threading) or must never copy ("meta"
# carries job hints such as auto_reply, stored beside the headers of the row).
_SKIPPED_HEADERS = frozenset({"in-reply-to", "references", "meta"})
# Lost connections are worth one immediate retry on a fresh connection: a pooled client may
# have been closed by the server while idle (RFC 5321 section 4.5.3.2 lets servers time out).
_CONNECTION_ERRORS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                      aiosmtplib.SMTPTimeoutError, ConnectionError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to connect; `tls` is none, starttls or tls (implicit TLS, port 465)."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    tls: str = "none"
    timeout: float = 30.0
    pool_size: int = 4
    validate_certs: bool = True
    mail_domain: str = "hub.localhost"
    max_idle_seconds: float = 60.0
    retry_after: float | None = None


class SmtpPool:
    """Up to `size` connected clients, reused across sends; a broken client is dropped, not reused."""

    def __init__(self, config: SmtpConfig, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._tls_context = tls_context
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._slots = asyncio.Semaphore(config.pool_size)
        self.connects = 0

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        client = aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, timeout=cfg.timeout, use_tls=cfg.tls == "tls",
            start_tls=cfg.tls == "starttls", validate_certs=cfg.validate_certs, tls_context=self._tls_context,
            username=cfg.username, password=cfg.password,
        )
        await client.connect()
        self.connects += 1
        return client

    async def _take(self) -> aiosmtplib.SMTP:
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < self.config.max_idle_seconds:
                return client
            await _close(client)
        return await self._connect()

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """A connected client for one transaction; returned to the pool unless the block failed on it."""
        async with self._slots:
            client = await self._take()
            try:
                yield client
            except BaseException:
                # Refusals come back as results, so what lands here left the session in doubt.
                client.close()
                raise
            self._idle.append((client, time.monotonic()))

    async def aclose(self) -> None:
        """Quit every idle connection."""
        idle, self._idle = self._idle, []
        for client, _ in idle:
            await _close(client)


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        client.close()
        return
    try:
        await client.quit()
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        client.close()  # the server went away first: just drop our side


def _refs(value: str | None) -> list[str]:
    """Bare Message-IDs of a References/In-Reply-To value."""
    if not value:
        return []
    return _MSGID.findall(value) or value.split()


def _thread_args(item: Outbound, mail_domain: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The headers the sender owns (by lower-case name, the last one winning) and build_message's keyword arguments."""
    owned = {lower: value for key, value in item.headers if (lower := key.lower()) in _SKIPPED_HEADERS}
    token = item.meta.get("thread_token")
    return owned, {
        "domain": mail_domain, "reply_token": str(token) if token else None,
        "in_reply_to": next(iter(_refs(owned.get("in-reply-to"))), None),
        "references": _refs(owned.get("references")),
    }


def _without_owned(item: Outbound, owned: dict[str, str]) -> Outbound:
    """The Outbound without the headers the sender owns (it writes threading headers itself)."""
    if not owned:
        return item
    return replace(item, headers=tuple((k, v) for k, v in item.headers if k.lower() not in _SKIPPED_HEADERS))


def compose(item: Outbound, mail_domain: str) -> EmailMessage:
    """The RFC 5322 message for one Outbound: Reply-To reply+token, threading headers from the row."""
    owned, args = _thread_args(item, mail_domain)
    return build_message(_without_owned(item, owned), **args)


def wire(item: Outbound, mail_domain: str) -> tuple[bytes, str] | EmailMessage:
    """What goes on the wire: (bytes, Message-ID) for text and HTML mail, else the EmailMessage to flatten."""
    owned, args = _thread_args(item, mail_domain)
    # render() skips the row's own threading headers itself: no copy of the Outbound unless "meta" is there.
    rendered = render(_without_owned(item, owned) if "meta" in owned else item, **args)
    return rendered if rendered is not None else build_message(_without_owned(item, owned), **args)


def _failure(code: int, message: str, retry_after: float | None) -> SendResult:
    """A SendResult for an SMTP error reply: 5xx permanent, anything else transient."""
    detail = f"{code} {message}".strip()
    return SendResult(ok=False, detail=detail, code=str(code), permanent=500 <= code < 600,
                      retry_after=None if code >= 500 else retry_after)


async def _plain_envelope(client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes) -> str:
    """MAIL, RCPT and DATA of 7-bit CRLF bytes between two dot-atom addresses; the DATA reply's text.

    What `sendmail` does for them (SIZE, RSET after a refusal, the same exceptions) without
    parsing each address twice per message, which cost a tenth of the sender's CPU. No timeout
    per command: the caller bounds the whole transaction.
    """
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo(timeout=None)
        except aiosmtplib.SMTPHeloError:
            await client.helo(timeout=None)
    size = [b"SIZE=%d" % len(data)] if client.supports_extension("size") else []
    try:
        reply = await client.execute_command(b"MAIL", b"FROM:<" + sender.encode("ascii") + b">", *size, timeout=None)
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
        reply = await client.execute_command(b"RCPT", b"TO:<" + recipient.encode("ascii") + b">", timeout=None)
        if reply.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(reply.code, reply.message,
                                                                                     recipient)])
        return (await client.data(data, timeout=None)).message
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset(timeout=None)
        raise


async def _transact(
    client: aiosmtplib.SMTP, message: tuple[bytes, str] | EmailMessage, sender: str, recipient: str
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """MAIL, RCPT, DATA by the cheapest way the message and addresses allow; (refusals, reply text)."""
    if isinstance(message, EmailMessage):
        return await client.send_message(message, sender=sender, recipients=[recipient], timeout=None)
    if plain_address(sender) and plain_address(recipient):
        return {}, await _plain_envelope(client, sender, recipient, message[0])
    # Rendered 7-bit bytes with ASCII addresses: no flattening, no SMTPUTF8.
    return await client.sendmail(sender, [recipient], message[0], timeout=None)


UNREACHABLE = "connection"  # SendResult.code when no connection to the server could be made

# What the sender puts on the wire for one message, and that message's Message-ID.
_Prepared = tuple[tuple[bytes, str] | EmailMessage, str | None]


class SmtpSender:
    """`Sender` for the email channel; safe to share between concurrent jobs."""

    def __init__(self, config: SmtpConfig, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.pool = SmtpPool(config, tls_context)

    async def send(self, item: Outbound) -> SendResult:
        """Send one message; the result says sent, retry later, or failed for good."""
        prepared = self._prepare(item)
        if isinstance(prepared, SendResult):
            return prepared
        for attempt in (1, 2):
            try:
                async with self.pool.client() as client:
                    return await self._transaction(client, prepared, item)
            except _CONNECTION_ERRORS as exc:
                if attempt == 2:
                    log.warning("SMTP %s:%s unreachable: %s", self.config.host, self.config.port, exc)
                    return SendResult(ok=False, detail=f"connection failed: {exc}", code=UNREACHABLE,
                                      retry_after=self.config.retry_after)
        raise AssertionError("unreachable")

    async def send_many(self, items: Sequence[Outbound]) -> list[SendResult]:
        """Send a list, each pooled connection taking a run of messages; results in order.

        A connection lost mid-run is dropped and its message goes through `send` (a fresh
        connection, one more try); the lane then takes another connection for the rest. When
        that fails too, the server is unreachable and the messages not yet tried fail transiently.
        """
        results: list[SendResult | None] = [None] * len(items)
        todo = iter(range(len(items)))

        async def lane() -> None:
            for first in todo:
                index = first
                try:
                    async with self.pool.client() as client:
                        results[index] = await self._send_on(client, items[index])
                        for index in todo:  # the same run goes on over this connection
                            results[index] = await self._send_on(client, items[index])
                except _CONNECTION_ERRORS:
                    results[index] = retried = await self.send(items[index])
                    if retried.code == UNREACHABLE:  # the server is down: the rest wait for their retry too
                        for index in todo:  # drains the shared run, which stops every lane
                            results[index] = retried

        await asyncio.gather(*(lane() for _ in range(max(1, min(self.config.pool_size, len(items))))))
        return [result for result in results if result is not None]

    async def _send_on(self, client: aiosmtplib.SMTP, item: Outbound) -> SendResult:
        prepared = self._prepare(item)
        return prepared if isinstance(prepared, SendResult) else await self._transaction(client, prepared, item)

    def _prepare(self, item: Outbound) -> _Prepared | SendResult:
        """(what goes on the wire, its Message-ID), or a permanent failure when it cannot be composed."""
        try:
            message = wire(item, self.config.mail_domain)
        except (HeaderInjectionError, ValueError) as exc:
            return SendResult(ok=False, detail=str(exc), permanent=True, code="compose")
        if isinstance(message, EmailMessage):
            return message, (message["Message-ID"] or "").strip().strip("<>") or None
        return message, message[1] or None

    async def _transaction(self, client: aiosmtplib.SMTP, prepared: _Prepared, item: Outbound) -> SendResult:
        """One SMTP transaction on a pooled client; refusals come back as results, lost connections raise."""
        message, provider_id = prepared
        try:
            # One deadline for the transaction, not one timer per command (four per message): on
            # expiry the client is closed by the pool and the message retried on a fresh connection.
            async with asyncio.timeout(self.config.timeout):
                errors, reply = await _transact(client, message, item.sender.value, item.recipient.value)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return _failure(refused.code, refused.message, self.config.retry_after)
        except aiosmtplib.SMTPServerDisconnected:
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # RFC 5321 4.2.2: the server is closing the channel; reconnect later
                raise aiosmtplib.SMTPServerDisconnected(exc.message) from exc
            return _failure(exc.code, exc.message, self.config.retry_after)
        if errors:  # one recipient only, so a partial refusal cannot happen; kept for safety
            code, text = next(iter(errors.values()))
            return _failure(code, text, self.config.retry_after)
        return SendResult(ok=True, provider_id=provider_id, detail=f"250 {reply}".strip())

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.pool.aclose()
