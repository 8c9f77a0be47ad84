"""Outbound -> RFC 5322 message (pure), and subject normalisation for threading.

`build_message` builds an `EmailMessage` (any content: attachments, inline images). `render`
writes the wire bytes of the common case (text/plain, optionally with an HTML alternative)
directly: the same headers, the same folding and encoded words (a header that is not plain
short ASCII goes through `policy.SMTP` exactly as `EmailMessage` would fold it) and the same
transfer-encoding choice, without building and flattening a message tree, which costs
milliseconds per mail.
"""

from __future__ import annotations

import binascii
import functools
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy, quoprimime
from email.headerregistry import Address as HeaderAddress
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
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


_PRINTABLE = re.compile(r"[ -~]+")  # printable ASCII and space: nothing to encode
_MAX_LINE = 78
_HARD_LINE = 998  # RFC 5322 section 2.1.1


def _is_plain(value: str) -> bool:
    """Printable ASCII that no decoder would take for an encoded word."""
    return _PRINTABLE.fullmatch(value) is not None and "=?" not in value


def fold_plain(name: str, value: str, linesep: str = "\r\n") -> str | None:
    """`name: value` folded at spaces only, or None when the value is not plain ASCII.

    The stdlib turns a plain value holding a word longer than a line (a URL, a long Message-ID)
    into RFC 2047 encoded words, which List-Unsubscribe and References readers do not decode;
    RFC 5322 lets such a line run to 998 characters instead.
    """
    if not _is_plain(value):
        return None
    words = value.split(" ")
    lines, line = [], f"{name}: {words[0]}"
    for word in words[1:]:
        if word and len(line) + 1 + len(word) > _MAX_LINE:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    if any(len(folded) > _HARD_LINE for folded in lines):
        return None
    return linesep.join(lines) + linesep


class _PlainFoldingHeader(BaseHeader):
    """Header base whose unstructured headers with plain ASCII values fold at spaces (see fold_plain)."""

    def fold(self, *, policy: Policy) -> str:
        if isinstance(self, UnstructuredHeader):
            folded = fold_plain(self.name, str(self), policy.linesep)
            if folded is not None:
                return folded
        return str(super().fold(policy=policy))


_REGISTRY = HeaderRegistry(base_class=_PlainFoldingHeader)
MESSAGE_POLICY = policy.default.clone(header_factory=_REGISTRY)  # what build_message's messages use


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


def _reply_to_parts(out: Outbound, domain: str, reply_token: str | None) -> tuple[str, str] | None:
    """(display name, `local+<token>@domain`), so the customer's answer finds its conversation."""
    if not reply_token:
        return None
    token = _checked("Reply-To", reply_token)
    if not re.fullmatch(r"[A-Za-z0-9_.=-]{1,128}", token):
        raise ValueError(f"reply token {token!r} is not a plain token")
    local = out.sender.value.split("@", 1)[0].split("+", 1)[0]
    return _checked("Reply-To", out.sender.name), f"{local}+{token}@{domain}"


def _reply_to(out: Outbound, domain: str, reply_token: str | None) -> HeaderAddress | None:
    """The Reply-To address with the conversation's token."""
    parts = _reply_to_parts(out, domain, reply_token)
    return None if parts is None else HeaderAddress(display_name=parts[0], addr_spec=parts[1])


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
    msg = EmailMessage(policy=MESSAGE_POLICY)
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


# --- the wire bytes of plain and alternative mail, without EmailMessage -------------------------

_WIRE = policy.SMTP.clone(header_factory=_REGISTRY)  # CRLF line ends, 78-character lines, as aiosmtplib
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDR = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*")
_SPECIALS = frozenset('()<>@,:;."[]\\')  # RFC 5322 specials: a display name with one is quoted
_QP_SNIFF_LINES = 10
_TYPED_HEADERS = frozenset(HeaderRegistry().registry)  # address, date, MIME...: not unstructured


def _fold(name: str, value: object) -> str:
    """One header line exactly as EmailMessage writes it under policy.SMTP (encoded words, folding).

    header_store_parse is what `msg[name] = value` calls: it refuses what str.splitlines() splits
    (vertical tab, U+2028...) with the same ValueError build_message raises.
    """
    return str(_WIRE.header_store_parse(name, value)[1].fold(policy=_WIRE))


# Cached: folding a non-ASCII value takes the header parser ~0.5 ms, and the same sender names
# and subjects ("Re: ..." of one conversation, a campaign's) come back mail after mail.
@functools.lru_cache(maxsize=4096)
def _text_line(name: str, value: str) -> str:
    """An unstructured header (Subject, In-Reply-To...)."""
    if len(name) + 2 + len(value) <= _MAX_LINE and _is_plain(value):
        return f"{name}: {value}\r\n"
    return fold_plain(name, value) or _fold(name, value)


def _msgid_line(name: str, value: str) -> str:
    """A `<id>` header whose id is a plain left@right."""
    if len(name) + 2 + len(value) <= _MAX_LINE and _SIMPLE_ADDR.fullmatch(value[1:-1]):
        return f"{name}: {value}\r\n"
    return _fold(name, value)


def plain_address(value: str) -> bool:
    """An addr-spec of dot-atoms only: safe in an SMTP envelope as `<value>` without parsing or quoting."""
    return _SIMPLE_ADDR.fullmatch(value) is not None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=4096)
def _address_line(name: str, display: str, addr_spec: str) -> str:
    """An address header; ValueError (as from headerregistry) when the address is not valid."""
    if _SIMPLE_ADDR.fullmatch(addr_spec) and (not display or _is_plain(display)):
        shown = display if _SPECIALS.isdisjoint(display) else _quote(display)
        value = f"{shown} <{addr_spec}>" if shown else addr_spec
        if len(name) + 2 + len(value) <= _MAX_LINE:
            return f"{name}: {value}\r\n"
    return _fold(name, HeaderAddress(display_name=display, addr_spec=addr_spec))


def _encode_text(text: str) -> tuple[str, str]:
    """(transfer encoding, body with LF line ends) for UTF-8 text, as `set_content` chooses it.

    The same choice as email.contentmanager makes, minus 8bit: short ASCII lines stay 7bit,
    anything else is quoted-printable or base64, whichever is shorter on the first lines, so
    the bytes need no 8BITMIME from the server.
    """
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= _MAX_LINE:
        try:
            return "7bit", (b"\n".join(lines) + b"\n").decode("ascii")
        except UnicodeDecodeError:
            pass
    sniff = b"\n".join(lines[:_QP_SNIFF_LINES]) + b"\n"
    sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        step = _MAX_LINE // 4 * 3
        body = b"\n".join(lines) + b"\n"
        return "base64", "".join(binascii.b2a_base64(body[i:i + step]).decode("ascii")
                                 for i in range(0, len(body), step))
    if len(lines) <= _QP_SNIFF_LINES:
        return "quoted-printable", sniff_qp
    return "quoted-printable", quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)


def _text_part(text: str, subtype: str) -> str:
    """Content headers, blank line and body of one text part (CRLF line ends)."""
    cte, body = _encode_text(text.replace("\x00", ""))
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
            + body.replace("\n", "\r\n"))


def _alternative(text: str, html: str) -> str:
    """multipart/alternative of the text and the HTML, with a boundary found in neither."""
    parts = [_text_part(text, "plain"), _text_part(html, "html")]
    boundary = "=_" + secrets.token_hex(12)  # 26 characters: the Content-Type line stays unfolded
    while any(boundary in part for part in parts):  # cannot happen for QP/base64; cheap for 7bit
        boundary = "=_" + secrets.token_hex(12)
    return (f'Content-Type: multipart/alternative; boundary="{boundary}"\r\nMIME-Version: 1.0\r\n\r\n'
            + f"--{boundary}\r\n" + parts[0] + f"\r\n--{boundary}\r\n" + parts[1] + f"\r\n--{boundary}--\r\n")


def _renderable_extras(headers: Sequence[tuple[str, str]]) -> bool:
    """Extra headers render() writes itself: well-formed names of unstructured headers only."""
    for name, _value in headers:
        key = name.lower()
        if key in _RESERVED:
            continue
        if not _HEADER_NAME.match(name) or key in _TYPED_HEADERS or key.startswith(("content-", "mime-")):
            return False
    return True


@functools.lru_cache(maxsize=4)
def _date_line(epoch_second: int) -> str:
    """The Date header of a second (every mail sent within it shares the line)."""
    return f"Date: {format_datetime(datetime.fromtimestamp(epoch_second, UTC))}\r\n"


def _identity_lines(out: Outbound, domain: str, now: datetime | None) -> tuple[list[str], str]:
    """From, To, Subject, Date and Message-ID lines (checked in build_message's order), and the id."""
    lines = [
        _address_line("From", _checked("From", out.sender.name), _checked("From", out.sender.value)),
        _address_line("To", _checked("To", out.recipient.name), _checked("To", out.recipient.value)),
    ]
    subject = _checked("Subject", out.subject)
    lines.append(_text_line("Subject", subject) if subject else _fold("Subject", ""))
    lines.append(_date_line(int((now or datetime.now(UTC)).timestamp())))
    msgid = _bracketed("Message-ID", out.external_id) if out.external_id else make_msgid(domain=domain)
    lines.append(_msgid_line("Message-ID", msgid))
    return lines, msgid.strip("<>")


def _thread_lines(in_reply_to: str | None, references: Sequence[str]) -> list[str]:
    """In-Reply-To and References, as _set_thread_headers writes them."""
    lines = []
    if in_reply_to:
        lines.append(_text_line("In-Reply-To", _bracketed("In-Reply-To", in_reply_to)))
    refs = [_bracketed("References", ref) for ref in references if ref]
    if in_reply_to and _bracketed("In-Reply-To", in_reply_to) not in refs:
        refs.append(_bracketed("In-Reply-To", in_reply_to))
    if refs:
        lines.append(_text_line("References", " ".join(refs)))
    return lines


def render(
    out: Outbound,
    *,
    domain: str,
    reply_token: str | None,
    in_reply_to: str | None,
    references: Sequence[str],
    now: datetime | None = None,
) -> tuple[bytes, str] | None:
    """(wire bytes, Message-ID) of a text (+ HTML) mail, or None when build_message must build it.

    Same checks as build_message (HeaderInjectionError on CR/LF/NUL, ValueError on a bad token
    or address); None for attachments, non-ASCII addresses and extra MIME or address headers.
    """
    if out.attachments or not _renderable_extras(out.headers):
        return None
    if not (out.sender.value.isascii() and out.recipient.value.isascii()):
        return None  # SMTPUTF8 addresses: send_message negotiates them
    lines, msgid = _identity_lines(out, domain, now)
    lines += _thread_lines(in_reply_to, references)
    reply_to = _reply_to_parts(out, domain, reply_token)
    if reply_to is not None:
        lines.append(_address_line("Reply-To", *reply_to))
    if out.meta.get("auto_reply"):
        lines.append("Auto-Submitted: auto-replied\r\n")  # RFC 3834 section 5, as in build_message
    lines += [_text_line(name, _checked(name, value)) for name, value in out.headers if name.lower() not in _RESERVED]
    if out.body_html:
        lines.append(_alternative(out.body_text, out.body_html))
    else:
        lines.append("MIME-Version: 1.0\r\n" + _text_part(out.body_text, "plain"))
    return "".join(lines).encode("ascii"), msgid


def normalise_subject(subject: str) -> str:
    """The subject without its Re:/Fwd:/R:/I:/AW:/WG:/SV:/TR:/RIF: prefixes; [tags] are kept."""
    previous = None
    text = subject.strip()
    while previous != text:
        previous = text
        text = _REPLY_PREFIX.sub("", text, count=1).strip()
    return " ".join(text.split())
