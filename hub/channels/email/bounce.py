"""Bounces: RFC 3464 delivery status notifications, and the common non-standard ones.

State mapping (a DeliveryUpdate never moves a message back, see DeliveryState):

| Action                        | Status  | state        | permanent |
|-------------------------------|---------|--------------|-----------|
| failed                        | 5.x.x   | BOUNCED      | True      |
| failed                        | 4.x.x / none | UNDELIVERED | False  |
| delayed                       | any     | SENT         | False     |
| delivered / relayed / expanded| any     | DELIVERED    | False     |

A "delayed" notice is news, not a failure: the MTA still retries, so the message stays SENT and
the detail tells the agent why it is late. A 4.x.x "failed" means the MTA gave up on a
temporary error: not delivered, but the address is not proven bad, so no suppression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import HeaderParser

from hub.core.envelopes import Channel, DeliveryState, DeliveryUpdate

_MSGID = re.compile(r"<([^<>\s]+)>")
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_FAILED_RECIPIENT = re.compile(r"<([^<>\s@]+@[^<>\s]+)>:")
_ORIGINAL_BELOW = re.compile(
    r"^-+ ?(?:Below this line is a copy of the message|This is a copy of the message"
    r"|Original message follows|The original message was)",
    re.IGNORECASE | re.MULTILINE,
)
_DAEMONS = ("mailer-daemon@", "postmaster@", "mail-daemon@")


@dataclass(frozen=True, slots=True)
class _Recipient:
    """One per-recipient block of a delivery-status report."""

    recipient: str | None
    action: str
    status: str | None
    diagnostic: str


def bare_msgid(value: str | None) -> str | None:
    """The first Message-ID in a header value, without angle brackets."""
    if not value:
        return None
    found = _MSGID.search(value)
    text = found.group(1) if found else value.strip()
    return text or None


def _strip_type(value: str | None) -> str | None:
    """`rfc822; bob@example.com` -> `bob@example.com` (RFC 3464 address-type prefix)."""
    if not value:
        return None
    return value.split(";", 1)[-1].strip().strip("<>").lower() or None


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part (per-message, then per-recipient)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    if isinstance(payload, str):
        # Some MTAs send it base64 or as text: parse the blocks ourselves.
        return [HeaderParser().parsestr(chunk) for chunk in re.split(r"\n\s*\n", payload) if chunk.strip()]
    return []


def _recipient(block: Message) -> _Recipient:
    """Read one per-recipient block."""
    status = str(block.get("Status", "") or "").strip() or None
    diagnostic = str(block.get("Diagnostic-Code", "") or "")
    return _Recipient(
        recipient=_strip_type(str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))),
        action=str(block.get("Action", "") or "").strip().lower(),
        status=status,
        diagnostic=diagnostic.split(";", 1)[-1].strip() if ";" in diagnostic else diagnostic.strip(),
    )


def _worst(recipients: list[_Recipient]) -> _Recipient | None:
    """The recipient that matters most: a failure before a delay before a success."""
    order = {"failed": 0, "delayed": 1}
    return min(recipients, key=lambda r: order.get(r.action, 2), default=None)


def _state(rcpt: _Recipient) -> tuple[DeliveryState, bool]:
    """Delivery state and permanence for one recipient, per the table in the module docstring."""
    if rcpt.action == "failed":
        permanent = bool(rcpt.status and rcpt.status.startswith("5"))
        return (DeliveryState.BOUNCED, True) if permanent else (DeliveryState.UNDELIVERED, False)
    if rcpt.action == "delayed":
        return DeliveryState.SENT, False
    return DeliveryState.DELIVERED, False


def _original_from_part(part: Message) -> str | None:
    """Message-ID of the returned message (message/rfc822 or text/rfc822-headers part)."""
    ctype = part.get_content_type()
    if ctype in ("message/rfc822", "message/global"):
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        return bare_msgid(str(inner.get("Message-ID", ""))) if isinstance(inner, Message) else None
    if ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
        text = part.get_payload(decode=True)
        if isinstance(text, bytes):
            headers = HeaderParser().parsestr(text.decode("ascii", "surrogateescape"))
            return bare_msgid(str(headers.get("Message-ID", "")))
    return None


def _original_ref(msg: Message, per_message: Message | None) -> str | None:
    """The original Message-ID, else the Original-Envelope-Id we gave the MTA."""
    for part in msg.walk():
        found = _original_from_part(part)
        if found:
            return found
    if per_message is not None:
        return bare_msgid(str(per_message.get("Original-Envelope-Id", "") or "")) or None
    return None


def is_dsn(msg: Message) -> bool:
    """RFC 3464: multipart/report with report-type=delivery-status."""
    return (
        msg.get_content_type() == "multipart/report"
        and str(msg.get_param("report-type", "", header="content-type")).lower() == "delivery-status"
    )


def parse_dsn(msg: Message, *, external_id: str, occurred_at: datetime, raw: bytes) -> DeliveryUpdate | None:
    """A DeliveryUpdate from a DSN, or None when it names no original message we could match."""
    status_part = next((p for p in msg.walk() if p.get_content_type() == "message/delivery-status"), None)
    blocks = _blocks(status_part) if status_part is not None else []
    per_message = blocks[0] if blocks else None
    original = _original_ref(msg, per_message)
    rcpt = _worst([_recipient(b) for b in blocks[1:] if b.get("Action") or b.get("Final-Recipient")])
    if original is None or rcpt is None:
        return None
    state, permanent = _state(rcpt)
    return DeliveryUpdate(
        channel=Channel.EMAIL,
        external_id=external_id,
        state=state,
        occurred_at=occurred_at,
        original_ref=original,
        recipient=rcpt.recipient,
        detail=rcpt.diagnostic or rcpt.action,
        code=rcpt.status,
        permanent=permanent,
        raw=raw,
    )


def _legacy_original(msg: Message, body: str) -> str | None:
    """Original Message-ID of a qmail-style bounce: an attached message, or the copy in the body."""
    for part in msg.walk():
        found = _original_from_part(part)
        if found:
            return found
    below = _ORIGINAL_BELOW.search(body)
    if below is None:
        return None
    copy = HeaderParser().parsestr(body[below.end() :].split("\n", 1)[-1].lstrip("\n"))
    return bare_msgid(str(copy.get("Message-ID", "") or ""))


def parse_legacy(
    msg: Message, *, sender: str, body: str, external_id: str, occurred_at: datetime, raw: bytes
) -> DeliveryUpdate | None:
    """Non-RFC 3464 bounces (qmail, old Exim/"Mail Delivery Subsystem") from a mailer daemon."""
    if not sender.lower().startswith(_DAEMONS):
        return None
    original = _legacy_original(msg, body)
    if original is None:
        return None
    status = _STATUS.search(body)
    code = status.group(0) if status else None
    rcpt = _FAILED_RECIPIENT.search(body)
    # qmail never gives a status for a permanent failure: a daemon's bounce without a 4.x.x is one.
    permanent = not (code and code.startswith("4"))
    return DeliveryUpdate(
        channel=Channel.EMAIL,
        external_id=external_id,
        state=DeliveryState.BOUNCED if permanent else DeliveryState.UNDELIVERED,
        occurred_at=occurred_at,
        original_ref=original,
        recipient=rcpt.group(1).lower() if rcpt else None,
        detail=body.strip().split("\n\n", 1)[0][:500],
        code=code,
        permanent=permanent,
        raw=raw,
    )
