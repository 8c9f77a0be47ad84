"""Raw RFC 5322 bytes -> Inbound (or DeliveryUpdate for a bounce). Pure: no I/O, no database.

Decoding follows Zulip's email gateway: `email.policy.default`, text/plain preferred, HTML
flattened only when it is the sole body (and always kept, sanitised), a per-part charset
fallback, NUL bytes stripped, and oversize attachments refused without losing the message.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors as email_errors
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parseaddr
from typing import Any

from hub.channels.email import autoreply, bounce, htmltext, quotes
from hub.core.envelopes import (
    Address,
    AddressKind,
    AttachmentRef,
    Channel,
    DeliveryUpdate,
    Flag,
    Inbound,
)
from hub.core.identity import InvalidAddress, normalise, normalise_email

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024

# Headers kept on the Inbound for threading, loop detection and list handling.
KEPT_HEADERS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "List-Unsubscribe",
    "X-Autoreply",
    "X-Autorespond",
)
_TOKEN_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
_TOKEN = re.compile(r"^[^@+\s]+\+([A-Za-z0-9_.=-]{1,128})@(.+)$")
_MSGIDS = re.compile(r"<([^<>\s]+)>")
_BAD_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")

# What header access may raise on a malformed header under policy.default: the parser is
# lenient, the header objects are not (a fuzzed Date, an address with stray brackets).
# AttributeError is CPython's own bug in _header_value_parser on "<a@[.it>" (found by fuzzing).
HEADER_ERRORS = (
    email_errors.HeaderParseError,
    email_errors.MessageError,
    ValueError,
    IndexError,
    TypeError,
    AttributeError,
)
_PAYLOAD_ERRORS = (*HEADER_ERRORS, LookupError, AssertionError)


class _MessagePolicy(EmailPolicy):
    """policy.default that parses each header value once per message.

    The stdlib parses a header again on every access (get_content_type() alone runs a dozen
    times per part while parsing and walking one mail), and that parsing is most of its cost.
    The result is a pure function of (name, value): one message's policy keeps it.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        parsed: dict[tuple[str, str], Any] = self.__dict__["_parsed"]
        key = (name, value)
        found = parsed.get(key)
        if found is None:
            found = parsed[key] = super().header_fetch_parse(name, value)
        return found


_HEADER_FACTORY = HeaderRegistry()  # what policy.default has


def _is_unstructured(name: str) -> bool:
    """Whether policy.default reads this header as free text (Subject, References, X-...)."""
    return issubclass(_HEADER_FACTORY.registry.get(name.lower(), UnstructuredHeader), UnstructuredHeader)


def _message_policy() -> EmailPolicy:
    """A fresh policy (and header cache) for one message."""
    fresh = _MessagePolicy(header_factory=_HEADER_FACTORY)
    object.__setattr__(fresh, "_parsed", {})  # policies are immutable; this is the one mutable slot
    return fresh


class EmailParseError(ValueError):
    """The bytes cannot become an Inbound (empty, no usable From); quarantine them with the error."""


@dataclass(slots=True)
class _Parts:
    """What a walk over the MIME tree found."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[AttachmentRef] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    charset_fallbacks: list[str] = field(default_factory=list)


def _strip_nul(text: str) -> str:
    """NUL bytes break PostgreSQL text columns and mean nothing in mail."""
    return text.replace("\x00", "")


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode one part's bytes; return (text, charset used)."""
    # RFC 2045 section 5.1 / RFC 2046 section 4.1.2: the charset parameter is authoritative,
    # but real mail often declares none (meaning us-ascii) or the wrong one. Try the declared
    # charset, then UTF-8 (strict, so it rejects non-UTF-8 bytes), then Windows-1252, the
    # de facto superset of ISO-8859-1 that Outlook writes. Latin-1 maps every byte, so a part
    # never loses text to replacement characters, and the fallback is per part, never global.
    candidates = [c for c in (declared, "utf-8", "windows-1252") if c]
    for charset in candidates:
        try:
            return data.decode(charset), charset
        except (ValueError, LookupError):
            # UnicodeDecodeError, an unknown charset, or a name codecs refuses (NUL in it)
            continue
    return data.decode("latin-1"), "latin-1"


def _fix_8bit_header(value: str) -> str:
    """Undo the surrogate escapes the parser leaves for raw 8-bit header bytes (no encoded-word)."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), None)[0]


def _raw_value(msg: Message, name: str) -> str | None:
    """The first raw (unparsed) value of a header."""
    wanted = name.lower()
    return next((str(v) for k, v in msg.raw_items() if k.lower() == wanted), None)


def _has_8bit(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _decode_raw(value: str) -> str:
    """Decode a raw header by hand (encoded words, 8-bit bytes): the policy parser's fallback."""
    value = _fix_8bit_header(value)
    try:
        return str(make_header(decode_header(value)))
    except (*HEADER_ERRORS, LookupError, UnicodeError):
        return value


def header(msg: Message, name: str) -> str | None:
    """One header as clean text (encoded words decoded, 8-bit fixed, NUL and newlines removed)."""
    raw = _raw_value(msg, name)
    if raw is None:
        return None
    if _has_8bit(raw):
        # policy.default turns undeclared 8-bit bytes into U+FFFD: decode them ourselves.
        text = _decode_raw(raw)
    elif "=?" not in raw and _is_unstructured(name):
        # Free text without encoded words: the header parser would return it unchanged, once
        # the line breaks are removed (as header_fetch_parse does); skip its cost.
        text = raw.replace("\r", "").replace("\n", "")
    else:
        try:
            text = str(msg.get(name))
        except HEADER_ERRORS:
            text = _decode_raw(raw)
    return " ".join(_strip_nul(text).split())


def _header_pairs(msg: Message) -> list[tuple[str, str]]:
    """Every header once per occurrence, as text, for flag detection."""
    pairs: list[tuple[str, str]] = []
    for key, value in msg.raw_items():
        pairs.append((key, " ".join(_fix_8bit_header(str(value)).split())))
    return pairs


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, tolerant of malformed ones."""
    raw = _raw_value(msg, name)
    if raw is None:
        return []
    if not _has_8bit(raw):
        try:
            parsed: Any = msg.get(name)
            if hasattr(parsed, "addresses"):
                return [(a.display_name, a.addr_spec) for a in parsed.addresses if a.addr_spec]
        except HEADER_ERRORS:
            pass  # malformed for the policy's strict grammar: the lenient parser below tries
    text = " ".join(_strip_nul(_decode_raw(raw)).split())
    return [(n, a) for n, a in getaddresses([text]) if a]


def _sender(msg: Message, region: str) -> Address:
    """Normalised From (or Sender) address; EmailParseError when there is none usable."""
    for name in ("From", "Sender"):
        for display, addr in _addresses(msg, name):
            try:
                return normalise(AddressKind.EMAIL, addr, region, display or None)
            except InvalidAddress:
                continue
    raise EmailParseError("no usable From address")


def _reply_tokens(msg: Message, mailbox: str) -> list[str]:
    """`token:<t>` for each `local+<t>@domain` recipient on the mailbox's domain."""
    domain = mailbox.rsplit("@", 1)[-1]
    tokens: list[str] = []
    for name in _TOKEN_HEADERS:
        raw = _raw_value(msg, name)
        if raw is None or ("+" not in raw and "=?" not in raw):
            continue  # no reply+token address can be in it: spare the address parser
        for _, addr in _addresses(msg, name):
            match = _TOKEN.match(addr.strip().lower())
            if match and match.group(2) == domain:
                tokens.append("token:" + match.group(1))
    return tokens


def _msgids(value: str | None) -> list[str]:
    """Message-IDs of an In-Reply-To/References value, bare, in header order."""
    if not value:
        return []
    found = _MSGIDS.findall(value)
    return found or value.split()


def _thread_refs(msg: Message, mailbox: str) -> tuple[str, ...]:
    """Reply tokens, then In-Reply-To, then References newest first, without duplicates."""
    refs = [
        *_reply_tokens(msg, mailbox),
        *_msgids(header(msg, "In-Reply-To")),
        *reversed(_msgids(header(msg, "References"))),
    ]
    return tuple(dict.fromkeys(refs))


def _external_id(msg: Message, raw: bytes) -> str:
    """Message-ID without brackets, or a hash of the raw bytes when there is none."""
    found = bounce.bare_msgid(header(msg, "Message-ID"))
    return found or "sha256:" + hashlib.sha256(raw).hexdigest()


def _received_at(msg: Message, now: datetime | None) -> datetime:
    """Date header as aware UTC; `now` (or the clock) when missing or invalid."""
    try:
        value = msg.get("Date")
        stamp = getattr(value, "datetime", None)
    except HEADER_ERRORS:
        stamp = None
    if isinstance(stamp, datetime):
        # "-0000" (RFC 5322 section 3.3: unknown zone) parses naive; the instant is UTC.
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    return now or datetime.now(UTC)


def _decoded_payload(part: Message) -> bytes:
    """Transfer-decoded bytes of a leaf part (base64 and quoted-printable undone)."""
    try:
        payload = part.get_payload(decode=True)
    except _PAYLOAD_ERRORS:
        payload = None
    if isinstance(payload, bytes):
        return payload
    text = part.get_payload()
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else b""


def _text_of(part: Message, found: _Parts) -> str:
    """Decoded text of a text/* part, with the charset fallback recorded."""
    try:
        declared = part.get_content_charset()
    except HEADER_ERRORS:
        declared = None
    text, used = decode_bytes(_decoded_payload(part), declared)
    if declared and used != declared:
        found.charset_fallbacks.append(f"{declared}->{used}")
    return _strip_nul(text).replace("\r\n", "\n")


def _filename(part: Message, index: int, ctype: str) -> str:
    """The attachment's name (RFC 2231 and encoded words decoded), made safe for storage."""
    try:
        name = part.get_filename()
    except HEADER_ERRORS:
        name = None
    name = _BAD_FILENAME.sub("_", _fix_8bit_header(name)).strip(" .") if name else ""
    return name or f"attachment-{index}{mimetypes.guess_extension(ctype) or '.bin'}"


def _attachment(part: Message, ctype: str, found: _Parts, limit: int, related: bool = False) -> None:
    """Record one attachment, or refuse it in meta when it is over the size limit."""
    name = _filename(part, len(found.attachments) + len(found.refused) + 1, ctype)
    content = _rfc822_bytes(part) if part.is_multipart() else _decoded_payload(part)
    if len(content) > limit:
        found.refused.append(
            {"filename": name, "size": len(content), "reason": f"larger than the {limit}-byte limit"}
        )
        return
    content_id = bounce.bare_msgid(header(part, "Content-ID"))
    # A part of multipart/related with a Content-ID is an image the HTML shows (RFC 2387).
    inline = part.get_content_disposition() == "inline" or (content_id is not None and related)
    found.attachments.append(
        AttachmentRef(
            filename=name,
            content_type=ctype,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
            inline=inline,
            content_id=content_id,
        )
    )


def _rfc822_bytes(part: Message) -> bytes:
    """An attached message (forward as attachment) as bytes."""
    inner = part.get_payload()
    inner = inner[0] if isinstance(inner, list) and inner else inner
    if not isinstance(inner, Message):
        return b""
    try:
        return inner.as_bytes(policy=policy.default.clone(linesep="\r\n"))
    except (*_PAYLOAD_ERRORS, UnicodeError):
        return inner.as_bytes(policy=policy.compat32)


def _status_text(part: Message) -> str:
    """A delivery-status part as readable text, for bounces we keep as an Inbound."""
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [payload]
    return "\n".join(_strip_nul(_fix_8bit_header(str(block))) for block in blocks).strip()


def _is_body(part: Message, ctype: str) -> bool:
    """A text/plain or text/html leaf that is not marked as an attachment."""
    return ctype in ("text/plain", "text/html") and part.get_content_disposition() != "attachment"


def _walk(part: Message, found: _Parts, limit: int, related: bool = False) -> None:
    """Collect body texts and attachments; attached messages stay whole, as attachments."""
    ctype = part.get_content_type()
    if ctype == "message/delivery-status":
        found.plain.append(_status_text(part))
    elif ctype.startswith("message/") and part.is_multipart():
        _attachment(part, ctype, found, limit)
    elif part.is_multipart():
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message):
                _walk(child, found, limit, ctype == "multipart/related")
    elif _is_body(part, ctype):
        target = found.plain if ctype == "text/plain" else found.html
        target.append(_text_of(part, found))
    else:
        _attachment(part, ctype, found, limit, related)


def _flags(msg: Message, subject: str | None, found: _Parts) -> frozenset[Flag]:
    """Auto-reply and bulk flags, plus TRUNCATED when an attachment was refused."""
    flags = set(autoreply.detect(_header_pairs(msg), subject))
    if found.refused:
        flags.add(Flag.TRUNCATED)
    return frozenset(flags)


def _parse_message(raw: bytes) -> EmailMessage:
    """Bytes -> message, refusing what is not mail at all."""
    if not raw or not raw.strip(b"\x00 \t\r\n"):
        raise EmailParseError("empty message")
    msg = BytesParser(policy=_message_policy()).parsebytes(raw)
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise EmailParseError("no headers: not an RFC 5322 message")
    return msg


def _bounce(
    msg: Message, raw: bytes, ext: str, body: str, received_at: datetime, dsn: bool
) -> DeliveryUpdate | None:
    """A DeliveryUpdate when the mail is a bounce we can tie to an original message."""
    try:
        if dsn:
            return bounce.parse_dsn(msg, external_id=ext, occurred_at=received_at, raw=raw)
        sender = parseaddr(header(msg, "From") or "")[1]
        return bounce.parse_legacy(
            msg, sender=sender, body=body, external_id=ext, occurred_at=received_at, raw=raw
        )
    except _PAYLOAD_ERRORS:
        # A broken report is still a mail: it is stored as an Inbound flagged BOUNCE below.
        return None


def _bodies(found: _Parts) -> tuple[str, str | None]:
    """(body_text, sanitised body_html): text preferred, HTML flattened only when alone."""
    html = "\n".join(found.html) if found.html else None
    text = "\n".join(found.plain) if found.plain else htmltext.to_text(html or "")
    return text, htmltext.sanitise(html) if html else None


def parse(
    raw: bytes,
    *,
    mailbox: str,
    region: str = "IT",
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    now: datetime | None = None,
) -> Inbound | DeliveryUpdate:
    """Parse one raw mail received at `mailbox`; a bounce becomes a DeliveryUpdate."""
    msg = _parse_message(raw)
    found = _Parts()
    _walk(msg, found, max_attachment_bytes)
    body_text, body_html = _bodies(found)
    received_at = _received_at(msg, now)
    dsn = bounce.is_dsn(msg)
    external_id = _external_id(msg, raw)
    update = _bounce(msg, raw, external_id, body_text, received_at, dsn)
    if update is not None:
        return update
    subject = header(msg, "Subject")
    flags = _flags(msg, subject, found)
    if dsn:
        flags |= {Flag.BOUNCE, Flag.AUTOREPLY}
    return Inbound(
        channel=Channel.EMAIL,
        external_id=external_id,
        sender=_sender(msg, region),
        recipient=Address(AddressKind.EMAIL, normalise_email(mailbox)),
        received_at=received_at,
        body_text=body_text,
        subject=subject,
        body_html=body_html,
        visible_text=quotes.visible_text(body_text),
        thread_refs=_thread_refs(msg, normalise_email(mailbox)),
        attachments=tuple(found.attachments),
        flags=flags,
        raw=raw,
        headers=tuple((name, value) for name in KEPT_HEADERS if (value := header(msg, name)) is not None),
        meta=_meta(found, mailbox),
    )


def _meta(found: _Parts, mailbox: str) -> dict[str, Any]:
    """Facts for the timeline and for debugging: refused attachments, charset fallbacks."""
    meta: dict[str, Any] = {"mailbox": mailbox}
    if found.refused:
        meta["refused_attachments"] = found.refused
    if found.charset_fallbacks:
        meta["charset_fallbacks"] = found.charset_fallbacks
    return meta
