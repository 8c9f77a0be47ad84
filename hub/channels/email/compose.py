"""Outbound -> RFC 5322 message (pure), and subject normalisation for threading."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from hub.core.envelopes import Address, AttachmentRef, Outbound

_UNSAFE = re.compile(r"[\r\n\x00]")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 section 2.2: printable ASCII except ':'
# Headers build_message owns; extra headers may not replace them.
_RESERVED = frozenset(
    {"from", "to", "subject", "date", "message-id", "in-reply-to", "references", "reply-to", "auto-submitted"}
)
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|r|fwd?|i|aw|wg|sv|tr|rif|vs|antw)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*", re.IGNORECASE
)


class HeaderInjectionError(ValueError):
    """A header value (or name) that would start a new header line; names the header."""

    def __init__(self, header: str) -> None:
        super().__init__(f"header {header!r} contains CR, LF or NUL: refused")
        self.header = header


def _checked(name: str, value: str | None) -> str:
    """The value, or HeaderInjectionError when it could smuggle in another header."""
    if value is not None and _UNSAFE.search(value):
        raise HeaderInjectionError(name)
    return value or ""


def _address(name: str, addr: Address) -> HeaderAddress:
    """A header address with its display name, both checked for injection."""
    display = _checked(name, addr.name)
    return HeaderAddress(display_name=display, addr_spec=_checked(name, addr.value))


def _bracketed(name: str, msgid: str) -> str:
    """`<id>` form of a Message-ID given bare or bracketed."""
    bare = _checked(name, msgid).strip().strip("<>")
    return f"<{bare}>"


def _reply_to(out: Outbound, domain: str, reply_token: str | None) -> HeaderAddress | None:
    """`local+<token>@domain`, so the customer's answer finds its conversation."""
    if not reply_token:
        return None
    token = _checked("Reply-To", reply_token)
    if not re.fullmatch(r"[A-Za-z0-9_.=-]{1,128}", token):
        raise ValueError(f"reply token {token!r} is not a plain token")
    local = out.sender.value.split("@", 1)[0].split("+", 1)[0]
    display = _checked("Reply-To", out.sender.name)
    return HeaderAddress(display_name=display, addr_spec=f"{local}+{token}@{domain}")


def _set_identity_headers(msg: EmailMessage, out: Outbound, domain: str) -> None:
    """From, To, Subject, Date and Message-ID."""
    msg["From"] = _address("From", out.sender)
    msg["To"] = _address("To", out.recipient)
    msg["Subject"] = _checked("Subject", out.subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    if out.external_id:
        msg["Message-ID"] = _bracketed("Message-ID", out.external_id)
    else:
        msg["Message-ID"] = make_msgid(domain=domain)


def _set_thread_headers(msg: EmailMessage, in_reply_to: str | None, references: Sequence[str]) -> None:
    """In-Reply-To and References (oldest first, as RFC 5322 section 3.6.4 orders them)."""
    if in_reply_to:
        msg["In-Reply-To"] = _bracketed("In-Reply-To", in_reply_to)
    refs = [_bracketed("References", ref) for ref in references if ref]
    if in_reply_to and _bracketed("In-Reply-To", in_reply_to) not in refs:
        refs.append(_bracketed("In-Reply-To", in_reply_to))
    if refs:
        msg["References"] = " ".join(refs)


def _set_extra_headers(msg: EmailMessage, headers: Sequence[tuple[str, str]]) -> None:
    """The Outbound's own headers; a bad name or value is refused, reserved ones are skipped."""
    for name, value in headers:
        if not _HEADER_NAME.match(name):
            raise HeaderInjectionError(name)
        if name.lower() not in _RESERVED:
            msg[name] = _checked(name, value)


def _attach(msg: EmailMessage, item: AttachmentRef) -> None:
    """One attachment; inline ones keep their Content-ID for cid: references."""
    if item.content is None:
        raise ValueError(f"attachment {item.filename!r} has no content to send")
    maintype, _, subtype = item.content_type.partition("/")
    msg.add_attachment(
        item.content,
        maintype=maintype or "application",
        subtype=subtype or "octet-stream",
        filename=_checked("Content-Disposition", item.filename),
        disposition="inline" if item.inline else "attachment",
        cid=_bracketed("Content-ID", item.content_id) if item.content_id else None,
    )


def build_message(
    out: Outbound,
    *,
    domain: str,
    reply_token: str | None,
    in_reply_to: str | None,
    references: Sequence[str],
) -> EmailMessage:
    """The message to hand to SMTP for one Outbound; HeaderInjectionError on CR/LF/NUL values."""
    msg = EmailMessage()
    _set_identity_headers(msg, out, domain)
    _set_thread_headers(msg, in_reply_to, references)
    reply_to = _reply_to(out, domain, reply_token)
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    if out.meta.get("auto_reply"):
        # RFC 3834 section 5: responders mark what they send, so other responders stay quiet.
        msg["Auto-Submitted"] = "auto-replied"
    _set_extra_headers(msg, out.headers)
    msg.set_content(out.body_text.replace("\x00", ""))
    if out.body_html:
        msg.add_alternative(out.body_html.replace("\x00", ""), subtype="html")
    for item in out.attachments:
        _attach(msg, item)
    return msg


def normalise_subject(subject: str) -> str:
    """The subject without its Re:/Fwd:/R:/I:/AW:/WG:/SV:/TR:/RIF: prefixes; [tags] are kept."""
    previous = None
    text = subject.strip()
    while previous != text:
        previous = text
        text = _REPLY_PREFIX.sub("", text, count=1).strip()
    return " ".join(text.split())
