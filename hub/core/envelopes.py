"""Frozen envelopes every channel adapter produces and consumes.

They hold plain data only (no ORM objects, no I/O) so parsers stay pure functions of their
input and the core can be tested without a loop or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    PHONE = "phone"
    API = "api"


class AddressKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    WHATSAPP = "whatsapp"


class Flag(StrEnum):
    """Facts an adapter learnt about a message that routing must respect."""

    AUTOREPLY = "autoreply"
    BULK = "bulk"
    BOUNCE = "bounce"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    TRUNCATED = "truncated"
    OWN_MAIL = "own_mail"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    NOTE = "note"


class DeliveryState(StrEnum):
    """Outbound delivery states, ordered: a later state never moves back to an earlier one."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class Address:
    """A normalised address: email lower-cased, phone in E.164."""

    kind: AddressKind
    value: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """An attachment as the adapter saw it; `content` is None when only a URL is known (MMS)."""

    filename: str
    content_type: str
    size: int
    sha256: str | None = None
    content: bytes | None = field(default=None, repr=False)
    url: str | None = None
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """One inbound message, normalised; `external_id` is the idempotency key within the channel."""

    channel: Channel
    external_id: str
    sender: Address
    recipient: Address
    received_at: datetime
    body_text: str
    subject: str | None = None
    body_html: str | None = None
    visible_text: str | None = None
    thread_refs: tuple[str, ...] = ()
    attachments: tuple[AttachmentRef, ...] = ()
    flags: frozenset[Flag] = frozenset()
    raw: bytes | None = field(default=None, repr=False)
    raw_ref: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to send; built from an outbound Message row by the job that sends it."""

    channel: Channel
    message_id: int
    sender: Address
    recipient: Address
    body_text: str
    subject: str | None = None
    body_html: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[AttachmentRef, ...] = ()
    external_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a Sender reports; `permanent` failures are never retried."""

    ok: bool
    provider_id: str | None = None
    detail: str = ""
    permanent: bool = False
    code: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """A provider's news about an outbound message: status callback, DSN bounce."""

    channel: Channel
    external_id: str
    state: DeliveryState
    occurred_at: datetime
    original_ref: str
    recipient: str | None = None
    detail: str = ""
    code: str | None = None
    permanent: bool = False
    raw: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CallLog:
    """A phone call as a provider or PBX recorded it; `external_id` is CallSid or CDR uniqueid."""

    external_id: str
    direction: Direction
    caller: Address
    callee: Address
    started_at: datetime
    source: str = "twilio"
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: int = 0
    disposition: str = "answered"
    recording_url: str | None = None
    raw: bytes | None = field(default=None, repr=False)

    @property
    def missed(self) -> bool:
        return self.disposition in {"no-answer", "busy", "failed", "missed", "canceled"}
